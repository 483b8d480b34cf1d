"""Simulated studies with a known truth: the false-verdict rate and the power of the report's verdicts
(docs/statistics.md, "Calibration"; `osrm calibrate`; tests/core/test_calibration.py).

One simulated study: one task per entry of `metrics` (default two accuracy tasks), `n_rows` test rows each, two
arms, `n_seeds` seeds. Row i of a task has a difficulty z_i ~ N(1.5, 2.5²) on the logit scale and an arm-by-row
interaction δ_i ~ N(0, 0.5²): the arm's merged model has quality σ(z_i − 1 + δ_i), the reference's σ(z_i − 1 − δ_i)
(some rows favour one arm, some the other, none on average over the population of rows — why the test rows are a
sample too). Each (arm, seed) adds a seed effect u ~ N(0, seed_sd²) points to every row's quality (clipped to
[0, 1]): training luck that moves a run — each task's own (the default) or, with `shared`, partly one effect
common to every task of the run. Individual adapters follow the same model without the −1. What a
row's quality means depends on the metric (:data:`KINDS`):

- classification (accuracy: 4 classes; accuracy_f1: 2 classes, 40% positive; matthews: 2 classes, 15% positive,
  like spam): the probability that the row is right; a wrong row predicts another class;
- generated text (exact_match, token_f1, rouge_l: per-row scores in [0, 1]): the row's expected score; the row
  scores it plus N(0, 0.15²) noise of the decoding, clipped to [0, 1];
- regression (pearson_spearman): labels y_i ~ N(0, 1); the prediction is y_i + σ_i·ε with log σ_i = 1 − 2·quality,
  so a higher quality is a higher correlation.

A true difference `delta` (points, classification tasks only) makes the arm's merged model right on a further
share q of its wrong rows, q = delta / 100 / mean(1 − p), so that its expected accuracy rises by delta. Under
delta = 0 the two arms are exchangeable for every metric, so the true difference is exactly 0.
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple

import numpy as np

from osrm_core.stats import paired_bootstrap, verdict
from osrm_core.study import Rows, compare
from osrm_core.tasks.spec import ROW_MEAN_METRICS


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


class Kind(NamedTuple):
    """How a task of one metric draws its labels (n,) and turns row qualities (n,) in [0, 1] into one run's
    predictions (n,) (module docstring). delta (the power simulation) applies where `classes` is true."""

    labels: Callable[[np.random.Generator, int], np.ndarray]
    draw: Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]
    classes: bool


def _classes(n_classes: int, positive: float | None = None) -> Kind:
    def labels(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, n_classes, n) if positive is None else (rng.random(n) < positive).astype(np.int64)

    def draw(rng: np.random.Generator, quality: np.ndarray, labels: np.ndarray) -> np.ndarray:
        right = rng.random(len(labels)) < quality  # a wrong row predicts one of the other classes
        return np.where(right, labels, (labels + rng.integers(1, n_classes, len(labels))) % n_classes)

    return Kind(labels, draw, True)


def _text_draw(rng: np.random.Generator, quality: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.clip(quality + rng.normal(0.0, 0.15, len(quality)), 0.0, 1.0)  # per-row scores (labels unused)


def _regression_draw(rng: np.random.Generator, quality: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return labels + np.exp(1.0 - 2.0 * quality) * rng.normal(0.0, 1.0, len(labels))


KINDS: dict[str, Kind] = {
    "accuracy": _classes(4), "accuracy_f1": _classes(2, 0.4), "matthews": _classes(2, 0.15),
    "pearson_spearman": Kind(lambda rng, n: rng.normal(0.0, 1.0, n), _regression_draw, False),
    **{m: Kind(lambda rng, n: np.zeros(n), _text_draw, False) for m in ROW_MEAN_METRICS}}
TWO_ACCURACY = ("accuracy", "accuracy")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def one_study(rng: np.random.Generator, n_seeds: int, seed_sd: float, delta: float,
              metrics: tuple[str, ...] = TWO_ACCURACY, n_rows: int = 500,
              shared: float = 0.0) -> tuple[dict, dict, dict, dict, dict[str, Rows]]:
    """(arm, ref, arm individual, ref individual) as seed -> task -> preds (n_rows,), and the task rows; one task
    per entry of `metrics` (keys of KINDS). shared: the share of the seed variance common to every task of one
    (arm, seed) run (0: each task's seed effect independent; 1: one effect moves the whole run)."""
    if delta and not all(KINDS[m].classes for m in metrics):
        raise ValueError(f"calibration: a true delta is simulated on classification tasks only, got {metrics}")
    rows, runs = {}, [{str(s): {} for s in range(n_seeds)} for _ in range(4)]
    common = rng.normal(0.0, seed_sd, (n_seeds, 4)) if shared else None  # drawn only then: shared = 0 keeps the stream
    for t, metric in enumerate(metrics):
        name, kind = f"task{t}", KINDS[metric]
        labels = kind.labels(rng, n_rows)
        rows[name] = Rows(metric, labels)
        z, d = rng.normal(1.5, 2.5, n_rows), rng.normal(0.0, 0.5, n_rows)
        base = [_sigmoid(z - 1 + d), _sigmoid(z - 1 - d), _sigmoid(z + d), _sigmoid(z - d)]
        q = delta / 100.0 / float(np.mean(1.0 - base[0]))
        for s in range(n_seeds):
            for g in range(4):
                u = rng.normal(0.0, seed_sd)
                if common is not None:
                    u = np.sqrt(shared) * common[s, g] + np.sqrt(1.0 - shared) * u
                p = np.clip(base[g] + u / 100.0, 0.0, 1.0)
                if g == 0:
                    p = p + (1.0 - p) * q
                runs[g][str(s)][name] = kind.draw(rng, p, labels)
    return (*runs, rows)


def rate(n_seeds: int, seed_sd: float, delta: float = 0.0, n_studies: int = 400, n_boot: int = 200, seed: int = 0,
         method: Literal["seed", "seed_total", "seeds_x_rows"] = "seed", metrics: tuple[str, ...] = TWO_ACCURACY,
         n_rows: int = 500, shared: float = 0.0) -> Rate:
    """Verdict rates over n_studies simulated studies. method 'seed': the report's seed-level interval
    (osrm_core.study.compare, row term "cross"); 'seed_total': the same with the conservative row term "total"
    (osrm_core.inference.row_variance); 'seeds_x_rows': the percentile bootstrap over seeds × rows that earlier
    reports used (kept here only to show why it was replaced; average only, its normalised rates are reported as 0).
    metrics: one simulated task per entry (keys of KINDS), e.g. a study's own mix of metrics; shared: the share of
    the seed variance common to a run's tasks (one_study)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(4)
    for i in range(n_studies):
        arm, ref, arm_ind, ref_ind, rows = one_study(rng, n_seeds, seed_sd, delta, metrics, n_rows, shared)
        if method in ("seed", "seed_total"):
            c = compare(arm, ref, rows, arm_ind, ref_ind, n_boot=n_boot, seed=i,
                        row_term="cross" if method == "seed" else "total")
            codes = (c["verdict_code"], c["norm_verdict_code"])
        else:
            runs = [{s: {t: (p[t], rows[t].labels) for t in rows} for s, p in x.items()} for x in (arm, ref)]
            b = paired_bootstrap(*runs, {t: r.metric for t, r in rows.items()}, n_boot=n_boot, seed=i)
            codes = ({"better": 1, "worse": -1}.get(verdict(b.low, b.high, n_seeds), 0), 0)
        counts += [codes[0] == 1, codes[0] == -1, codes[1] == 1, codes[1] == -1]
    return Rate(*(counts / n_studies).tolist())
