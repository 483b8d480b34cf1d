"""Smoke test: benchmarks/merge_bench.py runs every method on a tiny module and writes its JSON."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "merge_bench.py"


def test_merge_bench_runs_on_a_tiny_module(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    argv = ["merge_bench.py", "--d-out", "12", "--d-in", "10", "--tasks", "3", "--rank", "2",
            "--repeats", "1", "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(BENCH), run_name="__main__")
    rows = json.loads(out.read_text())["rows"]
    assert {r["method"] for r in rows} >= {"ties", "knots", "regmean", "to_low_rank(ties)"}
    assert "ms/module" in capsys.readouterr().out
