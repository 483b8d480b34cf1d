"""Changing one arm in pipeline.yaml reruns only that arm: `dvc status` after recording a (placeholder)
run names that arm's fine-tune process, the one subspace process (it rebuilds every arm's subspaces; the other
arms' outputs, and so their fine-tunes, stay the same) and the pooled stages, nothing of the other arms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_changing_one_arm_reruns_only_that_arm(tmp_path):
    for name in ("dvc.yaml", "pipeline.yaml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    for name in ("osrm_core", "stages", "configs"):
        (tmp_path / name).symlink_to(REPO / name)
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    _placeholders(tmp_path)
    subprocess.run([DVC, "commit", "-f", "-q"], cwd=tmp_path, check=True)
    status = lambda: json.loads(subprocess.run([DVC, "status", "--json"], cwd=tmp_path, capture_output=True,  # noqa: E731
                                               text=True, check=True).stdout)
    assert status() == {}
    cfg = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    arm = "osrm"
    cfg["arms"][arm]["lora"] = {"freeze": "A"}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    changed = set(status())
    seeds = cfg["seeds"]
    assert {f"finetune@{s}-{arm}" for s in seeds} <= changed
    assert not [c for c in changed if any(c.endswith(f"-{other}") for other in cfg["arms"] if other != arm)], changed
    assert changed <= ({f"finetune@{s}-{arm}" for s in seeds} | {f"subspace@{s}" for s in seeds}
                       | {f"evaluate@{s}" for s in seeds} | {"report", "diagnose_summary"})
