"""SLURM job rendering and the DVC-stage -> SLURM-job DAG (pure functions: no subprocess, no I/O
beyond reading the templates in configs/slurm/).

`stages/submit.py` is the only caller of sbatch/squeue; it feeds these functions what it read from
the config and from DVC, and substitutes real job ids into the dependency specs.
"""

from __future__ import annotations

import graphlib
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

from osrm_core.errors import OsrmError

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "configs" / "slurm"
CLI_STAGES = ("extract-features", "build-subspace", "finetune", "convert", "merge", "evaluate", "report")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class Resources:
    """What one job asks SLURM for; None = the cluster's default (no #SBATCH line)."""

    partition: str | None = None
    time: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    nodes: int | None = None
    gpus_per_node: int | None = None
    extra: tuple[str, ...] = ()

    def merged(self, **overrides) -> "Resources":
        """A copy with every non-None override applied (CLI flags over resources.yaml)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def resources_for(table: Mapping, stage: str) -> Resources:
    """Resources of `stage` from a resources.yaml mapping: `default` merged with `stages[stage]`."""
    known = set(Resources.__dataclass_fields__)
    merged = dict(table.get("default") or {})
    merged.update((table.get("stages") or {}).get(stage) or {})
    unknown = sorted(set(merged) - known)
    if unknown:
        raise OsrmError(f"SLURM resources: unknown keys {unknown} for stage '{stage}' — use {sorted(known)}")
    merged["extra"] = tuple(merged.get("extra") or ())
    return Resources(**merged)


def sbatch_lines(job_name: str, res: Resources, output: str, array: str | None = None,
                 dependency: str | None = None) -> list[str]:
    """The #SBATCH header of a job (one option per line, only the options that are set)."""
    opts = [f"--job-name={job_name}", f"--output={output}"]
    pairs = [("partition", res.partition), ("time", res.time), ("cpus-per-task", res.cpus_per_task),
             ("mem", res.mem), ("nodes", res.nodes), ("gpus-per-node", res.gpus_per_node),
             ("array", array), ("dependency", dependency)]
    opts += [f"--{k}={v}" for k, v in pairs if v is not None]
    if dependency:
        opts.append("--kill-on-invalid-dep=yes")
    opts += list(res.extra)
    return [f"#SBATCH {o}" for o in opts]


def render(template: str, values: Mapping[str, str], template_dir: Path | None = None) -> str:
    """Fill the `{{name}}` placeholders of configs/slurm/<template>; every one must be given."""
    path = (template_dir or TEMPLATE_DIR) / template
    if not path.is_file():
        raise OsrmError(f"SLURM template {path} is missing — restore it from configs/slurm/ in the repository")
    text = path.read_text()
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise OsrmError(f"SLURM template {path}: no value for placeholders {missing} — the template and osrm_core/slurm.py disagree")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def stage_argv(stage: str, config: str, task: str | None = None, init: str | None = None,
               method: str | None = None, model: str | None = None, extra: Sequence[str] = (),
               check: bool = True) -> list[str]:
    """The `osrm <stage> ...` argument list (without the program) for one stage invocation;
    `check=False` skips the required-option check (the multi-node launcher appends --task itself)."""
    need = {"extract-features": ["task"], "build-subspace": ["task"], "finetune": ["task"],
            "merge": ["init", "method"], "evaluate": ["model"]}
    if stage not in CLI_STAGES:
        raise OsrmError(f"--stage '{stage}' is not a pipeline stage — use one of {list(CLI_STAGES)}")
    given = {"task": task, "init": init, "method": method, "model": model}
    lacking = [f"--{k}" for k in need.get(stage, []) if not given[k]] if check else []
    if lacking:
        raise OsrmError(f"stage {stage} needs {' and '.join(lacking)} — pass it to `osrm submit stage`")
    head, extra = [stage], list(extra)
    if stage == "convert":
        if not extra or extra[0].startswith("-"):
            raise OsrmError("stage convert needs its subcommand after `--`, e.g. `-- project --adapter A --out O`")
        head, extra = [stage, extra[0]], extra[1:]
    argv = head + ["--config", config]
    for key in ("task", "init", "method", "model"):
        if given[key]:
            argv += [f"--{key}", given[key]]
    return argv + extra


def case_table(commands: Mapping[int, str]) -> str:
    """Bash `case` branches `  i) <command> ;;`, one per array index."""
    return "\n".join(f"  {i})\n    {cmd}\n    ;;" for i, cmd in sorted(commands.items()))


def array_spec(indices: Sequence[int], max_parallel: int | None = None) -> str:
    """`--array` value: `0-3` for a contiguous range, else `0,2,5`; `%N` caps concurrent members."""
    idx = sorted(indices)
    contiguous = idx == list(range(idx[0], idx[0] + len(idx)))
    spec = f"{idx[0]}-{idx[-1]}" if contiguous and len(idx) > 1 else ",".join(map(str, idx))
    return f"{spec}%{max_parallel}" if max_parallel else spec


# ------------------------------------------------------------------ DVC stages -> SLURM jobs


@dataclass(frozen=True)
class StageNode:
    """One expanded DVC stage: its address (for dvc commands), commands, wdir and upstream stages."""

    name: str
    cmd: tuple[str, ...] = ()
    wdir: str = "."
    deps: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        """The foreach/matrix family: `finetune@osrm-a` -> `finetune` (a plain stage is its own)."""
        return self.name.rsplit("@", 1)[0] if "@" in self.name else self.name


@dataclass
class Job:
    """One sbatch submission: a single stage, or an array whose index `indices[i]` runs `stages[i]`."""

    key: int
    name: str
    stages: tuple[str, ...]
    indices: tuple[int, ...] | None = None
    after: tuple[int, ...] = ()
    corr: bool = False

    @property
    def is_array(self) -> bool:
        return self.indices is not None

    def dependency(self, job_ids: Mapping[int, str]) -> str | None:
        """`afterok:<id>:<id>` (or `aftercorr:<id>` for a matched array) with the submitted ids."""
        if not self.after:
            return None
        kind = "aftercorr" if self.corr else "afterok"
        return kind + "".join(f":{job_ids[k]}" for k in self.after)


def stage_job_command(node: StageNode, root: str, runner: str = "cmd") -> str:
    """Bash lines that run one DVC stage inside a job. `cmd`: the stage's own commands in its wdir
    (jobs run in parallel), then `dvc commit` records outputs in dvc.lock and the cache under DVC's
    repo lock. `repro`: `dvc repro --single-item` (DVC holds its repo lock for the whole run, so jobs
    sharing one repository run one at a time)."""
    dvc = "dvc --wait-for-lock"
    if runner == "repro":
        return f"cd {shlex.quote(root)}\n    {dvc} repro --single-item {shlex.quote(node.name)}"
    if runner != "cmd":
        raise OsrmError(f"--runner '{runner}' is unknown — use cmd or repro")
    inside = node.wdir not in ("", ".")
    lines = [f"cd {shlex.quote(str(Path(root) / node.wdir) if inside else root)}"]
    lines += [f"bash -c {shlex.quote(c)}" for c in node.cmd] + ([f"cd {shlex.quote(root)}"] if inside else [])
    lines.append(f"{dvc} commit --force --quiet {shlex.quote(node.name)}")
    return "\n    ".join(lines)


def select(stages: Mapping[str, StageNode], targets: Sequence[str] = ()) -> dict[str, StageNode]:
    """The targets (stage address, name or family) and all their upstream stages; all when none."""
    if not targets:
        return dict(stages)
    def names(n: str, s: StageNode) -> set[str]:
        return {n, s.family, n.split(":")[-1], s.family.split(":")[-1]}

    want = [n for n, s in stages.items() if names(n, s) & set(targets)]
    unmatched = [t for t in targets if not any(t in names(n, s) for n, s in stages.items())]
    if unmatched:
        raise OsrmError(f"--targets {unmatched} match no DVC stage — see `dvc stage list` for the names")
    keep, todo = set(), list(want)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(stages[name].deps)
    return {n: s for n, s in stages.items() if n in keep}


def restrict(stages: Mapping[str, StageNode], names: set[str]) -> dict[str, StageNode]:
    """Only `names`, with edges to stages outside them dropped (those are already up to date)."""
    return {n: replace(s, deps=tuple(d for d in s.deps if d in names)) for n, s in stages.items() if n in names}


def downstream(stages: Mapping[str, StageNode], roots: set[str]) -> set[str]:
    """`roots` and every stage that (transitively) depends on one of them."""
    out, changed = set(roots), True
    while changed:
        changed = False
        for n, s in stages.items():
            if n not in out and any(d in out for d in s.deps):
                out.add(n)
                changed = True
    return out


def _families(stages: Mapping[str, StageNode]) -> dict[str, list[str]]:
    """Family -> members; a family whose members depend on each other (directly or through another
    family) is split into one family per stage, which keeps the family graph acyclic."""
    fam = {n: s.family for n, s in stages.items()}
    while True:
        graph: dict[str, set[str]] = {}
        for n, s in stages.items():
            graph.setdefault(fam[n], set()).update(fam[d] for d in s.deps)
        bad = {f for f, ups in graph.items() if f in ups}
        if not bad:
            try:
                graphlib.TopologicalSorter(graph).prepare()
                break
            except graphlib.CycleError as err:
                bad = set(err.args[1])
        split = {n: (n if f in bad else f) for n, f in fam.items()}
        if split == fam:
            raise OsrmError(f"DVC stages form a cycle through {sorted(bad)} — fix the deps/outs in dvc.yaml")
        fam = split
    groups: dict[str, list[str]] = {}
    for n in stages:
        groups.setdefault(fam[n], []).append(n)
    return groups


def _family_order(groups: Mapping[str, list[str]], stages: Mapping[str, StageNode]) -> list[str]:
    """Families in dependency order (upstream first), ties in dvc.yaml order."""
    owner = {n: f for f, members in groups.items() for n in members}
    sorter = graphlib.TopologicalSorter()
    for f, members in groups.items():
        sorter.add(f, *sorted({owner[d] for n in members for d in stages[n].deps} - {f}))
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as err:
        raise OsrmError(f"DVC stages form a cycle {err.args[1]} — fix the deps/outs in dvc.yaml") from None


def _make_job(key: int, fam: str, members: list[str], upstream: frozenset[int],
              where: Mapping[str, tuple[int, int | None]], jobs: Sequence[Job],
              stages: Mapping[str, StageNode]) -> Job:
    """A single-stage job, or an array; `aftercorr` when each member has exactly one upstream stage
    and those are distinct members of one upstream array (member i waits only for its own input)."""
    after = tuple(sorted(upstream))
    if len(members) == 1:
        return Job(key, fam, tuple(members), after=after)
    if len(after) == 1 and jobs[after[0]].is_array and all(len(stages[m].deps) == 1 for m in members):
        idx = [where[stages[m].deps[0]][1] for m in members]
        if len(set(idx)) == len(idx):
            order = sorted(range(len(members)), key=lambda i: idx[i])
            return Job(key, fam, tuple(members[i] for i in order), tuple(idx[i] for i in order), after, corr=True)
    return Job(key, fam, tuple(members), tuple(range(len(members))), after)


def build_job_dag(stages: Mapping[str, StageNode], arrays: bool = True) -> list[Job]:
    """SLURM jobs for the stages, upstream first. Members of one family that share the same upstream
    jobs become one array job (unless `arrays` is False); `Job.after` holds upstream job keys."""
    groups = _families(stages) if arrays else {n: [n] for n in stages}
    jobs: list[Job] = []
    where: dict[str, tuple[int, int | None]] = {}
    for fam in _family_order(groups, stages):
        by_upstream: dict[frozenset[int], list[str]] = {}
        for n in groups[fam]:
            by_upstream.setdefault(frozenset(where[d][0] for d in stages[n].deps), []).append(n)
        for upstream, members in by_upstream.items():
            job = _make_job(len(jobs), fam, members, upstream, where, jobs, stages)
            jobs.append(job)
            for i, n in enumerate(job.stages):
                where[n] = (job.key, job.indices[i] if job.is_array else None)
    return jobs


# ------------------------------------------------------------------ whole scripts


@dataclass(frozen=True)
class Place:
    """Where a job runs and writes: working directory, log and exit-marker folders, setup lines."""

    cwd: str
    log_dir: str
    marker_dir: str
    setup: str = ""


def _common(place: Place, description: str) -> dict[str, str]:
    return {"cwd": shlex.quote(place.cwd), "marker_dir": shlex.quote(place.marker_dir),
            "setup": place.setup, "description": description}


def single_script(name: str, command: str, res: Resources, place: Place, description: str,
                  dependency: str | None = None) -> str:
    """A one-stage job running `command` (a bash line) in `place.cwd`."""
    header = sbatch_lines(name, res, f"{place.log_dir}/%x-%j.out", dependency=dependency)
    return render("stage.sbatch", {**_common(place, description), "sbatch": "\n".join(header), "command": command})


def array_script(name: str, commands: Mapping[int, str], res: Resources, place: Place, description: str,
                 dependency: str | None = None, max_parallel: int | None = None) -> str:
    """An array job: index i runs `commands[i]` (a bash snippet)."""
    spec = array_spec(list(commands), max_parallel)
    header = sbatch_lines(name, res, f"{place.log_dir}/%x-%A_%a.out", array=spec, dependency=dependency)
    return render("array.sbatch", {**_common(place, description), "sbatch": "\n".join(header),
                                   "cases": case_table(commands)})


def launch_line(argv: Sequence[str], launcher: str, port: int) -> str:
    """The srun line that starts the distributed fine-tune; `argv` ends before `--task "$TASK"`."""
    args = shlex.join(argv) + ' --task "$TASK"'
    if launcher == "torchrun":
        return ("srun --kill-on-bad-exit=1 torchrun --nnodes \"$SLURM_NNODES\" --nproc_per_node \"$GPUS\" "
                f"--rdzv_id \"$SLURM_JOB_ID\" --rdzv_backend c10d --rdzv_endpoint \"$head:{port}\" -m stages.cli {args}")
    if launcher == "srun":
        inner = ("export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS; "
                 f"exec python -m stages.cli {args}")
        return f"export TASK\nsrun --kill-on-bad-exit=1 bash -c {shlex.quote(inner)}"
    raise OsrmError(f"--launcher '{launcher}' is unknown — use torchrun or srun")


def multinode_script(name: str, argv: Sequence[str], tasks: Sequence[str], res: Resources, place: Place,
                     description: str, launcher: str = "torchrun", port: int = 29500,
                     dependency: str | None = None, max_parallel: int | None = None) -> str:
    """A multi-node fine-tune (an array over `tasks` when there are several)."""
    gpus = res.gpus_per_node or 1
    array = array_spec(range(len(tasks)), max_parallel) if len(tasks) > 1 else None
    out = f"{place.log_dir}/%x-%A_%a.out" if array else f"{place.log_dir}/%x-%j.out"
    header = sbatch_lines(name, res, out, array=array, dependency=dependency)
    if array:
        select = 'case "${SLURM_ARRAY_TASK_ID:-}" in\n' + case_table(
            {i: f"TASK={shlex.quote(t)}" for i, t in enumerate(tasks)}) + "\n  *) exit 2 ;;\nesac"
    else:
        select = f"TASK={shlex.quote(tasks[0])}"
    return render("finetune_multinode.sbatch", {
        **_common(place, description), "sbatch": "\n".join(header), "gpus_per_node": str(gpus),
        "ntasks_per_node": "1" if launcher == "torchrun" else str(gpus), "port": str(port),
        "select": select, "launcher": launcher, "launch": launch_line(argv, launcher, port)})
