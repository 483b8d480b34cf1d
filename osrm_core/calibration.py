"""Simulated studies with a known truth: the false-verdict rate and the power of the report's verdicts
(docs/statistics.md, "Calibration"; `osrm calibrate`; tests/core/test_calibration.py).

One simulated study: `tasks` accuracy tasks of `n_rows` test rows (4 classes), two arms, `n_seeds` seeds. Row i of a
task has a difficulty z_i ~ N(1.5, 2.5²) on the logit scale and an arm-by-row interaction δ_i ~ N(0, 0.5²): the
arm's merged model is right with probability σ(z_i − 1 + δ_i), the reference's with σ(z_i − 1 − δ_i) (some rows
favour one arm, some the other, none on average over the population of rows — why the test rows are a sample
too). Each (arm, seed) adds a seed effect u ~ N(0, seed_sd²) points to every row's probability (clipped to
[0, 1]): training luck that moves a whole run. Individual adapters follow the same model without the −1. Each row
is then right or wrong independently. A true difference `delta` (points) makes the arm's merged model right on a
further share q of its wrong rows, q = delta / 100 / mean(1 − p), so that its expected average rises by delta.
Under delta = 0 the two arms are exchangeable, so the true difference is exactly 0.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from osrm_core.stats import paired_bootstrap, verdict
from osrm_core.study import Rows, compare

CLASSES = 4


class Rate(NamedTuple):
    """Share of simulated studies whose verdict was better / worse, for the average and the normalised score."""

    better: float
    worse: float
    norm_better: float
    norm_worse: float

    @property
    def any(self) -> float:
        return self.better + self.worse

    @property
    def norm_any(self) -> float:
        return self.norm_better + self.norm_worse


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _preds(prob: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class predictions (n,): the label with probability prob (n,), else a wrong class."""
    right = rng.random(len(labels)) < prob
    return np.where(right, labels, (labels + rng.integers(1, CLASSES, len(labels))) % CLASSES)


def one_study(rng: np.random.Generator, n_seeds: int, seed_sd: float, delta: float, tasks: int = 2,
              n_rows: int = 500) -> tuple[dict, dict, dict, dict, dict[str, Rows]]:
    """(arm, ref, arm individual, ref individual) as seed -> task -> preds (n_rows,), and the task rows."""
    rows, runs = {}, [{str(s): {} for s in range(n_seeds)} for _ in range(4)]
    for t in range(tasks):
        name = f"task{t}"
        labels = rng.integers(0, CLASSES, n_rows)
        rows[name] = Rows("accuracy", labels)
        z, d = rng.normal(1.5, 2.5, n_rows), rng.normal(0.0, 0.5, n_rows)
        base = [_sigmoid(z - 1 + d), _sigmoid(z - 1 - d), _sigmoid(z + d), _sigmoid(z - d)]
        q = delta / 100.0 / float(np.mean(1.0 - base[0]))
        for s in range(n_seeds):
            for g in range(4):
                p = np.clip(base[g] + rng.normal(0.0, seed_sd) / 100.0, 0.0, 1.0)
                if g == 0:
                    p = p + (1.0 - p) * q
                runs[g][str(s)][name] = _preds(p, labels, rng)
    return (*runs, rows)


def rate(n_seeds: int, seed_sd: float, delta: float = 0.0, n_studies: int = 400, n_boot: int = 200, seed: int = 0,
         method: Literal["seed", "seed_total", "seeds_x_rows"] = "seed", tasks: int = 2, n_rows: int = 500) -> Rate:
    """Verdict rates over n_studies simulated studies. method 'seed': the report's seed-level interval
    (osrm_core.study.compare, row term "cross"); 'seed_total': the same with the conservative row term "total"
    (osrm_core.inference.row_variance); 'seeds_x_rows': the percentile bootstrap over seeds × rows that earlier
    reports used (kept here only to show why it was replaced; average only, its normalised rates are reported as 0)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(4)
    for i in range(n_studies):
        arm, ref, arm_ind, ref_ind, rows = one_study(rng, n_seeds, seed_sd, delta, tasks, n_rows)
        if method in ("seed", "seed_total"):
            c = compare(arm, ref, rows, arm_ind, ref_ind, n_boot=n_boot, seed=i,
                        row_term="cross" if method == "seed" else "total")
            codes = (c["verdict_code"], c["norm_verdict_code"])
        else:
            runs = [{s: {t: (p[t], rows[t].labels) for t in rows} for s, p in x.items()} for x in (arm, ref)]
            b = paired_bootstrap(*runs, {t: "accuracy" for t in rows}, n_boot=n_boot, seed=i)
            codes = ({"better": 1, "worse": -1}.get(verdict(b.low, b.high, n_seeds), 0), 0)
        counts += [codes[0] == 1, codes[0] == -1, codes[1] == 1, codes[1] == -1]
    return Rate(*(counts / n_studies).tolist())
