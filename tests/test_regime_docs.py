"""docs/regimes.md publishes the regime map exactly as scripts/regime_map.py printed it from its numbers
(docs/results/regime_map_*.json), and every published verdict follows its interval: primary rows by their Holm-adjusted
p, every other row by its seed-level interval (docs/statistics.md)."""

import json
from pathlib import Path

import pytest

from osrm_core import regime_map

REPO = Path(__file__).resolve().parents[1]
MAPS = sorted((REPO / "docs/results").glob("regime_map_*.json"))


def _entries(m: dict):
    for p in m["points"]:
        for side in ("vs_reference", "vs_control"):
            yield from p[side].values()


@pytest.mark.parametrize("path", MAPS, ids=lambda p: p.stem)
def test_docs_hold_the_printed_table(path):
    m = json.loads(path.read_text())
    assert regime_map.table(m) in (REPO / "docs/regimes.md").read_text()
    assert (path.with_suffix(".png")).is_file()
    assert f"{path.stem}.png" in (REPO / "docs/regimes.md").read_text()


@pytest.mark.parametrize("path", MAPS, ids=lambda p: p.stem)
def test_every_verdict_follows_its_interval(path):
    m = json.loads(path.read_text())
    assert len(m["seeds"]) >= 3
    for e in _entries(m):
        if e.get("primary"):
            expect = (1 if e["diff"] > 0 else -1) if e["p_holm"] < 0.05 else 0
        else:
            expect = 1 if e["ci_low"] > 0 else -1 if e["ci_high"] < 0 else 0
        assert e["verdict_code"] == expect, e


def test_a_map_is_published():
    assert MAPS, "docs/results/regime_map_*.json: run scripts/regime_map.py (docs/regimes.md)"
