"""README "The study": every verdict in its table agrees with the calibrated seed-level method on the published
numbers (docs/results/study_metrics.json). The seed-level interval is at least as wide as the t-interval over seeds
(same k − 1 df, one more variance term: osrm_core/inference.py), so a row whose t-interval contains 0 must read
"inconclusive", and no other row may claim better/worse without the row variance (it reads "undecided†")."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"task arithmetic (": ("task_arithmetic", None), "TIES (": ("ties", None),
            "task arithmetic at **λ = 1**": ("task_arithmetic", "lambda1"), "individual adapters": ("individual", None)}
ARMS = {"OSRM": "osrm", "orthonormal": "orthonormal", "OSRM, A frozen": "osrm_freeze_a", "contrast": "contrast"}


def _rows():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| method | arm | test avg |"):].split("\n\n")[0].splitlines()[2:]
    section = None
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        section = next((v for k, v in SECTIONS.items() if cells[0].startswith(k)), section) if cells[0] else section
        if cells[1] in ARMS:
            yield section, ARMS[cells[1]], cells[5], cells[6]


def test_readme_verdicts_follow_the_seed_level_method():
    metrics = json.loads((ROOT / "docs/results/study_metrics.json").read_text())
    rows = list(_rows())
    assert len(rows) == 16
    for (method, variant), arm, t_text, verdict in rows:
        entry = metrics[arm][method] if variant is None else metrics[arm][method][variant]
        lo, hi = entry["t_low"], entry["t_high"]
        assert t_text == f"[{lo:.2f}, {hi:.2f}]".replace("-", "−"), (arm, method, t_text)
        want = "inconclusive" if lo <= 0 <= hi else "undecided†"
        assert verdict == want, (arm, method, variant, verdict, want)
