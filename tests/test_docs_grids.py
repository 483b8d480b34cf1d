"""docs/merging.md's table of merge-parameter grids is the shipped configs' `merge.sweep`: pipeline.yaml (the default
run), configs/study.yaml, configs/starter/pipeline.yaml (`osrm init`) and the MergeConfig defaults. On a mismatch
the assertion prints the table the configs give (paste it between the markers)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from osrm_pipeline.config_sections import MergeConfig

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {  # table label -> the sweep it states
    "`pipeline.yaml` (the default run)": lambda: _sweep("pipeline.yaml"),
    "`configs/study.yaml` (the study)": lambda: _sweep("configs/study.yaml"),
    "`configs/starter/pipeline.yaml` (`osrm init`)": lambda: _sweep("configs/starter/pipeline.yaml"),
    "`MergeConfig` defaults (`osrm_pipeline/config_sections.py`)": lambda: MergeConfig().sweep,
}
BEGIN, END = "<!-- grids:begin (tests/test_docs_grids.py) -->", "<!-- grids:end -->"


def _sweep(rel: str) -> dict:
    return yaml.safe_load((ROOT / rel).read_text())["merge"]["sweep"]


def grid_text(grid: dict) -> str:
    """{"lambda": [0.5, 1.0], "density": [0.2]} -> 'lambda ∈ {0.5, 1} × density ∈ {0.2}'."""
    return " × ".join(f"{k} ∈ {{{', '.join(f'{v:g}' for v in vals)}}}" for k, vals in grid.items())


def expected_table() -> str:
    rows = ["| config | method | grid (the product is scored, after the merge.methods point) |", "|---|---|---|"]
    rows += [f"| {label} | {m} | {grid_text(g)} |" for label, sweep in SOURCES.items() for m, g in sweep().items()]
    return "\n".join(rows)


def test_docs_grid_table_is_the_configs():
    text = (ROOT / "docs/merging.md").read_text()
    assert BEGIN in text and END in text, f"docs/merging.md lost its grid table markers {BEGIN} … {END}"
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == expected_table(), "docs/merging.md's grid table differs from the configs; it should read:\n" + expected_table()


def test_docs_state_no_other_grid():
    """Outside the table the page names no grid values ('λ ∈ {…}'): the table is the one place they are stated."""
    text = (ROOT / "docs/merging.md").read_text()
    outside = text.split(BEGIN, 1)[0] + text.split(END, 1)[1]
    assert not re.findall(r"(?:λ|α|lambda|alpha|density) ∈ \{", outside)
