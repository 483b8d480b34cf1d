"""README "The study", "The generative study" and "Adapters you already have": each table is exactly what
scripts/study_table.py prints from the published numbers (docs/results/{study,generative,convert_study}_metrics.json,
written by `osrm report`), so every Δ, interval and verdict in it comes from the calibrated seed-level method
(docs/statistics.md); and every verdict in those numbers follows its own interval."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from osrm_core.report import summary_table
from osrm_pipeline.pipeline_config import load_config

ROOT = Path(__file__).resolve().parents[1]
STUDIES = [("docs/results/study_metrics.json", "configs/study.yaml"),
           ("docs/results/convert_study_metrics.json", "configs/convert_study.yaml"),
           ("docs/results/generative_metrics.json", "configs/generative.yaml")]


@pytest.mark.parametrize("metrics,config", STUDIES)
def test_readme_table_is_the_published_numbers(metrics, config):
    cfg = load_config(ROOT / config)  # its arms include those under `derived`
    table = summary_table(json.loads((ROOT / metrics).read_text()), list(cfg.arms), cfg.reference)
    assert table in (ROOT / "README.md").read_text()
    out = subprocess.run([sys.executable, "scripts/study_table.py", metrics, config], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == table


def _comparisons(numbers: dict):
    for arm, node in numbers.items():
        if isinstance(node, dict) and "individual" in node:
            for key, e in node.items():
                if isinstance(e, dict) and "ci_low" in e:
                    yield arm, key, e
                    yield from ((arm, f"{key}/{v}", e[v]) for v in ("default", "lambda1") if isinstance(e.get(v), dict) and "ci_low" in e[v])


@pytest.mark.parametrize("metrics,config", STUDIES)
def test_every_published_verdict_follows_its_interval(metrics, config):
    """Exploratory rows: better iff the interval is above 0, worse iff below; primary rows: p_Holm < 0.05 and the
    sign of Δ. The whole primary family (study.primary's methods × the arms but the reference) is there."""
    numbers, cfg = json.loads((ROOT / metrics).read_text()), load_config(ROOT / config)
    seen = primary = 0
    for arm, key, e in _comparisons(numbers):
        seen += 1
        if e.get("primary"):
            primary += 1
            want = 0 if e.get("p_holm", 1.0) >= 0.05 else (1 if e["diff"] > 0 else -1)
            assert e["p_holm"] >= e["p"], (arm, key)
        else:
            want = 1 if e["ci_low"] > 0 else -1 if e["ci_high"] < 0 else 0
        assert e["verdict_code"] == want, (arm, key, e)
    assert primary == len(cfg.study.primary) * (len(cfg.arms) - 1) and seen >= 5 * (len(cfg.arms) - 1)
