"""DVC stages -> SLURM jobs: the expanded stage graph, families (foreach/matrix) as job arrays, and the
job DAG with afterok/aftercorr dependencies (pure functions; osrm_slurm/dvc.py reads DVC,
osrm_slurm/jobs.py calls sbatch)."""

from __future__ import annotations

import graphlib
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

from osrm_core.errors import OsrmError


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


def to_submit(stages: Mapping[str, StageNode], changed: set[str], targets: Sequence[str] = (),
              force: bool = False) -> dict[str, StageNode]:
    """What `osrm submit dag` runs: the targets with their upstream stages, of those the changed ones
    and everything downstream of them (all selected ones when `force`), edges to the rest dropped."""
    chosen = select(stages, targets)
    todo = set(chosen) if force else downstream(chosen, changed & set(chosen))
    return restrict(chosen, todo)


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
