"""`osrm init DIR`: write a starter project (pipeline.yaml, a suite of two example tasks with their data,
dvc.yaml, README.md) into DIR, so that `osrm run -c pipeline.yaml` or `dvc repro` runs there.

The files are the shipped ``configs/starter/`` folder. Its dvc.yaml is generated from the repository's
dvc.yaml by :func:`slim_dvc` (``python scripts/render_starter_dvc.py`` in the repository root rewrites it;
tests/test_install.py checks that it is current): the same stages, without dependencies on this
repository's source files, plus the project's own task files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
import yaml

from osrm_core.errors import OsrmError
from osrm_pipeline.config_dirs import configs_dir
from stages.io.guard import guarded

#: dependencies on the repository's own files, which a project made anywhere does not have
SOURCE_DEPS = ("osrm_core/", "osrm_pipeline/", "stages/", "configs/backbones/")
#: the starter's task files (its suite and data folder), deps of the stages that read task rows
PROJECT_INPUTS = ["suite.yaml", "data"]
DATA_STAGES = ("extract", "finetune", "merge", "evaluate_base", "evaluate", "select")
#: shipped configs a project's dvc.yaml names by path (the report's plot template), copied into it
COPIED = ["plots/lambda_by_arm.json"]
HEADER = ("# The OSRM pipeline of this project as a DVC DAG (written by `osrm init`; generated from osrm-pipeline's\n"
          "# dvc.yaml without its source files). Values come from pipeline.yaml; `dvc repro` reruns what a change touches.\n")


def slim_dvc(dvc: dict) -> dict:
    """The repository's dvc.yaml (parsed) as a project's: deps on SOURCE_DEPS dropped, PROJECT_INPUTS
    added to the DATA_STAGES (a gaussian arm's finetune sees new data only through them, not through a subspace)."""
    stages = {}
    for name, stage in dvc["stages"].items():
        stage = dict(stage)
        body = stage
        if "do" in stage:  # a foreach stage keeps its body under `do`
            body = stage["do"] = dict(stage["do"])
        deps = [d for d in body.get("deps", []) if not str(d).startswith(SOURCE_DEPS)]
        body["deps"] = PROJECT_INPUTS + deps if name in DATA_STAGES else deps
        if not body["deps"]:
            del body["deps"]
        stages[name] = stage
    return {**dvc, "stages": stages}


def render_dvc(repo_dvc: Path) -> str:
    """The text of configs/starter/dvc.yaml for the repository's dvc.yaml at ``repo_dvc``."""
    return HEADER + yaml.safe_dump(slim_dvc(yaml.safe_load(repo_dvc.read_text())), sort_keys=False, width=120)


def write_starter(folder: Path, force: bool = False) -> list[Path]:
    """Copy the starter project into ``folder`` (created if missing); the files written, relative to it.
    A non-empty ``folder`` is refused unless ``force`` (then the starter's files are overwritten, others kept)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OsrmError(f"{folder} is a file — give a folder for the new project")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise OsrmError(f"{folder} is not empty — give a new or empty folder, or pass --force to overwrite the starter's files there")
    starter = configs_dir() / "starter"
    files = {p.relative_to(starter): p for p in sorted(starter.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}
    files.update({Path("configs") / c: configs_dir() / c for c in COPIED})
    for rel, src in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, folder / rel)
    return sorted(files)


@guarded
def main(folder: Path = typer.Argument(..., help="Folder for the new project (created; must be empty unless --force)."),
         force: bool = typer.Option(False, "--force", help="Write into a non-empty folder, overwriting the starter's files.")) -> None:
    """Write a starter project into FOLDER: pipeline.yaml, suite.yaml + example data, dvc.yaml, README.md."""
    written = write_starter(folder, force)
    typer.echo("\n".join(f"  {folder / rel}" for rel in written))
    typer.echo(f"next: cd {folder} && osrm run -c pipeline.yaml   (or: dvc init --no-scm && dvc repro); see {folder / 'README.md'}")
