"""benchmarks/pipeline_timing.py: per-stage-family time of a sequential dvc repro, and the share of process
start-up in it, from manifest stamps."""

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pipeline_timing.py"
T0 = "2026-01-01T00:00:00+00:00"
E = dt.datetime.fromisoformat(T0).timestamp()


def _manifest(root: Path, rel: str, stage: str, created: str, timing: dict | None = None) -> None:
    (root / rel).mkdir(parents=True)
    m = {"stage": stage, "created": created} | ({"timing": timing} if timing else {})
    (root / rel / "manifest.json").write_text(json.dumps(m))


def _stamped(root: Path, rel: str, stage: str, pid: int, start: float | None, main: float | None, written: float) -> None:
    """A manifest with timing; times in seconds after T0 (`created` rounded down, as write_manifest does)."""
    created = dt.datetime.fromtimestamp(E + int(written), dt.timezone.utc).isoformat(timespec="seconds")
    _manifest(root, rel, stage, created, {"pid": pid, "process_start": None if start is None else E + start,
                                         "main_start": None if main is None else E + main, "written": E + written})


def _run(*args) -> str:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], check=True, capture_output=True, text=True).stdout


def test_gaps_are_charged_to_the_later_stage_family(tmp_path):
    _manifest(tmp_path, "features/a", "extract-features", "2026-01-01T00:00:10+00:00")
    _manifest(tmp_path, "adapters/gaussian/a", "finetune", "2026-01-01T00:01:10+00:00")
    _manifest(tmp_path, "merged/seed42/lora/ties", "merge", "2026-01-01T00:01:30+00:00")
    _manifest(tmp_path, "merged/seed42/lora/weight_average", "merge", "2026-01-01T00:01:31+00:00")
    out = _run(tmp_path, "--start", T0)
    assert "| extract-features | 1 | 10 |" in out and "| finetune | 1 | 60 |" in out
    assert "| merge | 2 | 21 |" in out and "| **total** | 4 | **91**" in out
    # no timing stamps: start-up is unknown, not zero
    assert "start-up: 0 s" in out and "0 processes" in out and "4 artifacts without timing" in out


def test_start_up_per_process_from_stamps(tmp_path):
    # one extract process writing 2 artifacts, one finetune process writing 2, one merge process without psutil,
    # and a report written before stamps existed
    _stamped(tmp_path, "features/seed42/a", "extract-features", 11, 2.0, 5.0, 10.0)
    _stamped(tmp_path, "features/seed42/b", "extract-features", 11, 2.0, 5.0, 20.0)
    _stamped(tmp_path, "adapters/seed42/lora/a", "finetune", 12, 21.0, 24.5, 60.0)
    _stamped(tmp_path, "adapters/seed42/lora/b", "finetune", 12, 21.0, 24.5, 80.0)
    _stamped(tmp_path, "adapters/seed42/osrm/a", "finetune", 11, 83.0, 85.0, 90.0)  # pid reused: another process
    _stamped(tmp_path, "merged/seed42/lora", "merge", 14, None, 92.0, 95.0)
    _manifest(tmp_path, "report", "report", "2026-01-01T00:01:40+00:00")
    out = _run(tmp_path, "--start", T0)
    assert "| extract-features | 2 | 20 |" in out and "| finetune | 3 | 70 |" in out and "| **total** | 7 | **100**" in out
    assert "| extract-features | 1 | 3.0 | 2.0 | 0 | 0 |" in out  # started 2 s after dvc repro began
    assert "| finetune | 2 | 5.5 | 4.0 | 0 | 0 |" in out  # between: (21 - 20) + (83 - 80)
    assert "| merge | 1 | 0.0 | 0.0 | 1 | 0 |" in out and "| report | 0 | 0.0 | 0.0 | 0 | 1 |" in out
    assert "start-up: 8 s = 8.5% of the wall time (goal ≤ 10%), 3 processes, 2.8 s each; between stages (DVC): 6 s" in out
    assert "1 processes without a start stamp, 1 artifacts without timing" in out


def test_without_start_the_clock_starts_with_the_first_process(tmp_path):
    _stamped(tmp_path, "features/seed42/a", "extract-features", 11, 2.0, 5.0, 10.0)
    out = _run(tmp_path)
    assert "| extract-features | 1 | 8 |" in out and "start-up: 3 s = 37.5% of the wall time" in out


def test_nothing_ran_since_start(tmp_path):
    _manifest(tmp_path, "features/a", "extract-features", "2026-01-01T00:00:10+00:00")
    assert "nothing to time" in _run(tmp_path, "--start", "2026-01-02T00:00:00+00:00")
