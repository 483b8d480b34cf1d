"""benchmarks/pipeline_timing.py: per-stage-family time of a sequential dvc repro, from manifest stamps."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pipeline_timing.py"


def _manifest(root: Path, rel: str, stage: str, created: str) -> None:
    (root / rel).mkdir(parents=True)
    (root / rel / "manifest.json").write_text(json.dumps({"stage": stage, "created": created}))


def _run(*args) -> str:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], check=True, capture_output=True, text=True).stdout


def test_gaps_are_charged_to_the_later_stage_family(tmp_path):
    _manifest(tmp_path, "features/a", "extract-features", "2026-01-01T00:00:10+00:00")
    _manifest(tmp_path, "adapters/gaussian/a", "finetune", "2026-01-01T00:01:10+00:00")
    _manifest(tmp_path, "merged/seed42/lora/ties", "merge", "2026-01-01T00:01:30+00:00")
    _manifest(tmp_path, "merged/seed42/lora/weight_average", "merge", "2026-01-01T00:01:31+00:00")
    out = _run(tmp_path, "--start", "2026-01-01T00:00:00+00:00")
    assert "| extract-features | 1 | 10 |" in out and "| finetune | 1 | 60 |" in out
    assert "| merge | 2 | 21 |" in out and "| **total** | 4 | **91**" in out


def test_nothing_ran_since_start(tmp_path):
    _manifest(tmp_path, "features/a", "extract-features", "2026-01-01T00:00:10+00:00")
    assert "nothing to time" in _run(tmp_path, "--start", "2026-01-02T00:00:00+00:00")
