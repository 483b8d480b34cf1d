"""A change to pipeline.yaml reruns only what reads it, seen in `dvc status` after recording a (placeholder) run.
Changing one arm names that arm's fine-tune process, the one subspace process (it rebuilds every arm's subspaces;
the other arms' outputs, and so their fine-tunes, stay the same) and the pooled stages, nothing of the other arms.
Changing data.max_test names the scoring stages only (evaluate, select, report)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).parent / "dvc")


def _placeholders(root: Path) -> None:
    """Every out and every missing dep of the DAG as a tiny file or folder, so `dvc commit` can record a run."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        paths = [(Path(o.fs_path), True) for s in repo.index.stages for o in s.outs]
        paths += [(Path(d.fs_path), False) for s in repo.index.stages for d in s.deps]
    for p, _ in paths:
        if p.exists():
            continue
        if p.suffix in (".md", ".json", ".png"):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("x")
        else:
            p.mkdir(parents=True, exist_ok=True)
            (p / "x").write_text(p.name)


def _status(root: Path) -> dict:
    out = subprocess.run([DVC, "status", "--json"], cwd=root, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.fixture
def recorded(tmp_path) -> Path:
    """A copy of the DAG whose every stage is recorded as run (placeholder outs): `dvc status` is clean."""
    for name in ("dvc.yaml", "pipeline.yaml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    for name in ("osrm_core", "osrm_pipeline", "stages", "configs"):
        (tmp_path / name).symlink_to(REPO / name)
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    _placeholders(tmp_path)
    subprocess.run([DVC, "commit", "-f", "-q"], cwd=tmp_path, check=True)
    assert _status(tmp_path) == {}
    return tmp_path


def _edit(root: Path, change) -> dict:
    """pipeline.yaml after change(cfg) has edited it in place."""
    cfg = yaml.safe_load((root / "pipeline.yaml").read_text())
    change(cfg)
    (root / "pipeline.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def test_changing_one_arm_reruns_only_that_arm(recorded):
    arm = "osrm"
    cfg = _edit(recorded, lambda c: c["arms"][arm].update(lora={"freeze": "A"}))
    changed = set(_status(recorded))
    seeds = cfg["seeds"]
    assert {f"finetune@{s}-{arm}" for s in seeds} <= changed
    assert not [c for c in changed if any(c.endswith(f"-{other}") for other in cfg["arms"] if other != arm)], changed
    assert changed <= ({f"finetune@{s}-{arm}" for s in seeds} | {f"subspace@{s}" for s in seeds}
                       | {f"evaluate@{s}" for s in seeds} | {"report", "diagnose_summary"})


def test_more_test_rows_rescore_only(recorded):
    """data.max_test (what README recommends raising) is read by the scoring stages only: features and adapters stay."""
    cfg = _edit(recorded, lambda c: c["data"].update(max_test=c["data"]["max_test"] + 100))
    seeds, arms = cfg["seeds"], cfg["arms"]
    assert set(_status(recorded)) == ({f"evaluate@{s}" for s in seeds} | {f"select@{s}-{a}" for s in seeds for a in arms}
                                      | {"report"})
