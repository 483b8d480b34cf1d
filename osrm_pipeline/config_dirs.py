"""Where config files come from: the shipped defaults, and a project's own ``configs/`` folder.

The defaults are the repository's top-level ``configs/`` folder (backbones, suites, hparams, deepspeed,
slurm, plots, starter); a wheel ships that folder as the package data of ``osrm_configs``
(pyproject.toml). A project made anywhere (``osrm init``) may hold its own ``configs/<kind>/`` next to
its pipeline.yaml: a name is looked up there first, then in the shipped folder (docs/own_tasks.md).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from osrm_core.errors import OsrmError

ENV = "OSRM_CONFIGS_DIR"


def configs_dir() -> Path:
    """The shipped configs folder: ``$OSRM_CONFIGS_DIR`` when set (read on every call), else this source
    checkout's ``configs/`` (an editable install or PYTHONPATH: the code's own sibling, not another
    checkout's), else the installed package data ``osrm_configs`` (a wheel)."""
    override = os.environ.get(ENV)
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "configs").is_dir():
        return checkout / "configs"
    spec = importlib.util.find_spec("osrm_configs")
    if spec is None or not spec.submodule_search_locations:
        raise OsrmError(f"no configs folder: osrm-pipeline is installed without its package data `osrm_configs` — "
                        f"reinstall it (pip install osrm-pipeline) or set {ENV} to a configs folder")
    return Path(list(spec.submodule_search_locations)[0])


def search_dirs(kind: str, project: str | Path | None = None) -> list[Path]:
    """Folders holding configs of ``kind`` (e.g. 'backbones', 'suites'), first match wins:
    ``<project>/configs/<kind>`` (when ``project`` is given), then the shipped ``configs_dir()/<kind>``."""
    own = [Path(project) / "configs" / kind] if project is not None else []
    shipped = configs_dir() / kind
    return [d for d in own if d.resolve() != shipped.resolve()] + [shipped]


def find_config(kind: str, name: str, project: str | Path | None = None, suffix: str = ".yaml") -> Path | None:
    """``<dir>/<name><suffix>`` in the first of :func:`search_dirs` that has it; None when none has."""
    for folder in search_dirs(kind, project):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def config_files(kind: str, project: str | Path | None = None, suffix: str = ".yaml") -> dict[str, Path]:
    """Name -> file for every ``*<suffix>`` of ``kind``: the project's files override shipped ones of the same name."""
    found: dict[str, Path] = {}
    for folder in reversed(search_dirs(kind, project)):
        found.update({p.name.removesuffix(suffix): p for p in sorted(folder.glob(f"*{suffix}"))})
    return dict(sorted(found.items()))
