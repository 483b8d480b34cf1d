"""SLURM job rendering (pure functions: no subprocess, no I/O beyond reading the templates in
configs/slurm/); the DVC-stage -> SLURM-job DAG is in osrm_slurm/dag.py and re-exported here.

osrm_slurm/submit.py feeds these functions what `osrm submit` read from the config and from DVC
(osrm_slurm/dvc.py); osrm_slurm/jobs.py is the only caller of sbatch/squeue.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

from osrm_core.errors import OsrmError
from osrm_pipeline.config_dirs import configs_dir


def default_template_dir() -> Path:
    """configs/slurm/ (under $OSRM_CONFIGS_DIR when set): the sbatch templates and resources.yaml."""
    return configs_dir() / "slurm"


TEMPLATE_DIR = default_template_dir()  # as of import: the default of `osrm submit --resources`
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
    path = (template_dir or default_template_dir()) / template
    if not path.is_file():
        raise OsrmError(f"SLURM template {path} is missing — restore it from configs/slurm/ in the repository")
    text = path.read_text()
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise OsrmError(f"SLURM template {path}: no value for placeholders {missing} — the template and osrm_slurm/render.py disagree")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def stage_argv(stage: str, config: str, task: str | None = None, arm: str | None = None,
               method: str | None = None, model: str | None = None, extra: Sequence[str] = (),
               check: bool = True) -> list[str]:
    """The `osrm <stage> ...` argument list (without the program) for one stage invocation;
    `check=False` skips the required-option check (the multi-node launcher appends --task itself)."""
    need = {"extract-features": ["task"], "finetune": ["task", "arm"], "merge": ["arm", "method"], "evaluate": ["model"]}
    if stage not in CLI_STAGES:
        raise OsrmError(f"--stage '{stage}' is not a pipeline stage — use one of {list(CLI_STAGES)}")
    given = {"task": task, "arm": arm, "method": method, "model": model}
    lacking = [f"--{k}" for k in need.get(stage, []) if not given[k]] if check else []
    if lacking:
        raise OsrmError(f"stage {stage} needs {' and '.join(lacking)} — pass it to `osrm submit stage`")
    head, extra = [stage], list(extra)
    if stage == "convert":
        if not extra or extra[0].startswith("-"):
            raise OsrmError("stage convert needs its subcommand after `--`, e.g. `-- project --adapter A --out O`")
        head, extra = [stage, extra[0]], extra[1:]
    argv = head + ["--config", config]
    for key in ("task", "arm", "method", "model"):
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


# DVC stages -> SLURM jobs live in osrm_slurm/dag.py; re-exported so `slurm.<name>` keeps working.
from osrm_slurm.dag import (  # noqa: E402,F401
    Job,
    StageNode,
    build_job_dag,
    downstream,
    restrict,
    select,
    stage_job_command,
    to_submit,
)


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
        pick = 'case "${SLURM_ARRAY_TASK_ID:-}" in\n' + case_table(
            {i: f"TASK={shlex.quote(t)}" for i, t in enumerate(tasks)}) + "\n  *) exit 2 ;;\nesac"
    else:
        pick = f"TASK={shlex.quote(tasks[0])}"
    return render("finetune_multinode.sbatch", {
        **_common(place, description), "sbatch": "\n".join(header), "gpus_per_node": str(gpus),
        "ntasks_per_node": "1" if launcher == "torchrun" else str(gpus), "port": str(port),
        "select": pick, "launcher": launcher, "launch": launch_line(argv, launcher, port)})
