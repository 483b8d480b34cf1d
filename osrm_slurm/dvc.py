"""Read the DVC pipeline for `osrm submit dag`: the repository root, the expanded stages with their
upstream edges, and the stages `dvc status` reports as changed (the graph comes from DVC itself,
docs/slurm.md "The whole DVC DAG"; osrm_slurm/dag.py turns it into jobs)."""

from __future__ import annotations

import os
from pathlib import Path

from osrm_core.errors import OsrmError
from osrm_slurm.dag import StageNode


def find_root(start: Path) -> Path:
    """The DVC repository that contains `start`."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Path(Repo.find_root(str(start)))
    except NotDvcRepoError:
        raise OsrmError(f"no DVC repository at or above {start} — pass --repo, or run `dvc init` there") from None


def read_stages(root: Path) -> tuple[dict[str, StageNode], set[str]]:
    """Expanded DVC stages that have a command, their upstream edges (from `repo.index.graph`),
    and the addresses `dvc status` reports as changed."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            graph, runnable = repo.index.graph, [s for s in repo.index.stages if s.cmd]
            addr = {s: s.addressing for s in runnable}
            nodes = {s.addressing: StageNode(
                s.addressing, tuple(s.cmd if isinstance(s.cmd, list) else [s.cmd]),
                os.path.relpath(s.wdir, repo.root_dir), tuple(addr[d] for d in graph.successors(s) if d in addr))
                for s in runnable}
            changed = set(repo.status()) & set(nodes)
    except DvcException as err:
        raise OsrmError(f"DVC cannot read the pipeline in {root}: {err} — run `dvc dag` there to see why") from None
    return nodes, changed
