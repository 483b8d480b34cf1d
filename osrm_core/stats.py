"""Statistics of the study (docs/statistics.md): mean ± sd over seeds, paired intervals arm − reference, verdicts.

NumPy only at run time (SciPy costs ~1 s to import in every stage process); tests/core/test_stats.py checks
the Student-t quantile against scipy.stats.t.ppf and the bootstrap against scipy.stats.bootstrap.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Mapping, NamedTuple, Sequence

import numpy as np

from osrm_core.errors import OsrmError
from osrm_core.tasks.spec import ROW_MEAN_METRICS

ScoreFn = Callable[[np.ndarray, np.ndarray], float]
Runs = Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]  # seed -> task -> (preds (n,), labels (n,))


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd (ddof=1) of per-seed values (k,); with one value the sd is NaN (unknown, not 0)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise OsrmError("mean_sd: values must be a non-empty list of numbers (one per seed)")
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz; Numerical Recipes 6.4)."""
    if x <= 0.0 or x >= 1.0:
        return min(max(x, 0.0), 1.0)
    if x > (a + 1.0) / (a + b + 2.0):  # converges fast only below the mean: use I_x(a,b) = 1 - I_{1-x}(b,a)
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(a * math.log(x) + b * math.log1p(-x) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)) / a
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-16:
            break
    return front * (f - 1.0)


def _solve_betainc(a: float, b: float, target: float) -> float:
    """The x in [0, 1] with I_x(a, b) = target, by bisection until the bracket stops shrinking in float64."""
    lo, hi = 0.0, 1.0
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if _betainc(a, b, mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def t_ppf(p: float, df: float) -> float:
    """Student-t quantile: the t with P(T_df <= t) = p, for 0 < p < 1 and df >= 1.

    For t > 0: P(|T| < t) = I_y(1/2, df/2) with y = t² / (df + t²), and P(T > t) = I_x(df/2, 1/2) / 2 with
    x = 1 − y. Near the centre (tail > 1/4) solve for y, in the tail for x, so that the small one of y, x is the
    one found to full relative precision."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise OsrmError(f"t_ppf: need 0 < p < 1 and df > 0, got p={p}, df={df}")
    q = min(p, 1.0 - p)  # the tail probability, exact for p < 0.5 (no 1 − p rounding) and for p >= 0.5 (Sterbenz)
    if q > 0.25:
        y = _solve_betainc(0.5, df / 2.0, 1.0 - 2.0 * q)
        t = math.sqrt(df * y / (1.0 - y))
    else:
        x = _solve_betainc(df / 2.0, 0.5, 2.0 * q)
        t = math.sqrt(df * (1.0 - x) / x)
    return t if p >= 0.5 else -t


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail P(|T_df| >= |t|) = I_x(df/2, 1/2) with x = df / (df + t²), for df > 0 (non-integer df from
    Satterthwaite's formula is fine)."""
    if df <= 0:
        raise OsrmError(f"t_sf2: need df > 0, got {df}")
    return _betainc(df / 2.0, 0.5, df / (df + t * t)) if t != 0 else 1.0


def t_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Paired t-interval of the mean of per-seed differences (k,) (arm − reference, each seed's average score).

    mean ± t_{(1+level)/2, k-1} · sd / sqrt(k); (nan, nan) for one seed (no spread to estimate)."""
    if not 0.0 < level < 1.0:
        raise OsrmError(f"t_interval: level must be in (0, 1), got {level}")
    mean, sd = mean_sd(diffs)
    k = len(diffs)
    if k == 1:
        return math.nan, math.nan
    half = t_ppf((1.0 + level) / 2.0, k - 1) * sd / math.sqrt(k)
    return mean - half, mean + half


def verdict(low: float, high: float, n_seeds: int | None = None) -> str:
    """"better" if the interval lies above 0, "worse" if below, else "inconclusive".

    With n_seeds == 1 the answer is "inconclusive (1 seed)" whatever the interval: one seed cannot separate the arm
    from its initialisation luck. A NaN bound (a t-interval from one seed) is "inconclusive" too."""
    if n_seeds == 1:
        return "inconclusive (1 seed)"
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    return "better" if low > 0 else "worse" if high < 0 else "inconclusive"


class Bootstrap(NamedTuple):
    """estimate: the statistic arm − reference on the original data; [low, high]: percentile interval;
    replicates: (B,) the bootstrap distribution; per_seed: (S, B) each seed's arm − reference on replicate b's rows
    (rows-only bootstrap, resample_seeds=False; None otherwise): what osrm_core.inference needs to tell the rows'
    shared variance (covariance across seeds) from the seeds' own."""

    estimate: float
    low: float
    high: float
    replicates: np.ndarray
    per_seed: np.ndarray | None = None


def _check_seeds(named: Mapping[str, Runs], tasks: list[str]) -> list[str]:
    """The common seed keys of every group of runs; each seed must hold every scored task (others are ignored)."""
    seeds = list(next(iter(named.values())))
    for name, runs in named.items():
        if not runs or sorted(runs) != sorted(seeds):
            raise OsrmError(f"paired_bootstrap: '{name}' has seeds {sorted(runs)}, expected {sorted(seeds)} "
                            f"(seeds pair: give every arm the same seeds)")
        for s, by_task in runs.items():
            missing = sorted(set(tasks) - set(by_task))
            if missing:
                raise OsrmError(f"paired_bootstrap: '{name}' seed {s} lacks tasks {missing} of score_fns "
                                f"(evaluate them, or leave them out of score_fns)")
    return seeds


def _stack(named: Mapping[str, Runs], seeds: list[str], task: str) -> tuple[np.ndarray, np.ndarray]:
    """preds (G, S, n) of one task across groups × seeds, and its labels (n,), checked to be the same rows."""
    labels = np.asarray(named[next(iter(named))][seeds[0]][task][1])
    if labels.ndim != 1 or len(labels) == 0:
        raise OsrmError(f"paired_bootstrap: task {task}: labels must be a non-empty 1-d array, "
                        f"got shape {labels.shape}")
    preds = []
    for name, runs in named.items():
        for s in seeds:
            p, y = (np.asarray(a) for a in runs[s][task])
            if p.shape != labels.shape or not np.array_equal(y, labels):
                raise OsrmError(f"paired_bootstrap: '{name}' seed {s} task {task}: labels differ from "
                                f"'{next(iter(named))}' seed {seeds[0]} (rows pair: use the same test split)")
            preds.append(p)
    return np.stack(preds).reshape(len(named), len(seeds), -1), labels


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson r (B,) of x, y (B, n) or (n,) with row multiplicities w (B, n); 0 where a side is constant."""
    def centred(v):
        return v - ((w * v).sum(-1) / w.sum(-1))[:, None]
    xc, yc = centred(x), centred(y)
    cov, vx, vy = (w * xc * yc).sum(-1), (w * xc * xc).sum(-1), (w * yc * yc).sum(-1)
    denom = np.sqrt(vx * vy)
    return np.where(denom > 0, cov / np.where(denom > 0, denom, 1.0), 0.0)


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks (B, n) of x (n,) within each replicate's multiset (row i taken w[b, i] times): a tie group
    of total weight W with weight V below it spans ranks V+1..V+W, so each member gets V + (W + 1) / 2."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    start = np.r_[True, xs[1:] != xs[:-1]]
    group_w = np.add.reduceat(w[:, order], np.flatnonzero(start), axis=1)  # (B, groups)
    avg = np.cumsum(group_w, axis=1) - group_w + (group_w + 1.0) / 2.0
    ranks = np.empty_like(w)
    ranks[:, order] = avg[:, np.cumsum(start) - 1]
    return ranks


def _weighted_metric(metric: str, preds: np.ndarray, labels: np.ndarray, w: np.ndarray) -> np.ndarray:
    """osrm_core.metrics.compute(metric)["score"] (M, B) of preds (M, n) on every replicate at once, the replicate
    being row multiplicities w (B, n): counts are w-weighted sums, correlations w-weighted (ranks within the
    multiset for Spearman). Same values as recomputing on the resampled rows (tested)."""
    n = w.sum(1)  # (B,) every replicate has n rows
    correct = (preds == labels).astype(np.float64) @ w.T  # (M, B)
    if metric == "accuracy":
        parts = [correct / n]
    elif metric == "accuracy_f1":  # F1 of class 1: 2 tp / (2 tp + fp + fn)
        pos = (preds == 1).astype(np.float64)
        tp, pred_pos, true_pos = (pos * (labels == 1)) @ w.T, pos @ w.T, w @ (labels == 1).astype(np.float64)
        denom = pred_pos + true_pos
        parts = [correct / n, np.where(denom > 0, 2.0 * tp / np.where(denom > 0, denom, 1.0), 0.0)]
    elif metric == "matthews":  # Gorodkin: (c s - t.q) / sqrt((s^2 - q.q)(s^2 - t.t)) from class counts
        classes = np.unique(np.concatenate([labels, preds.ravel()]))
        t = (labels == classes[:, None]).astype(np.float64) @ w.T  # (k, B) true class counts
        q = ((preds[:, None, :] == classes[None, :, None]).astype(np.float64) @ w.T)  # (M, k, B) predicted counts
        num = correct * n - np.einsum("kb,mkb->mb", t, q)
        denom = (n * n - (q * q).sum(1)) * (n * n - (t * t).sum(0))
        parts = [np.where(denom > 0, num / np.sqrt(np.where(denom > 0, denom, 1.0)), 0.0)]
    elif metric in ROW_MEAN_METRICS:  # generated text: preds are per-row scores in [0, 1]
        parts = [(preds @ w.T) / n]
    elif metric == "pearson_spearman":
        label_ranks = _weighted_ranks(labels, w)
        parts = [np.stack([_weighted_corr(p, labels, w) for p in preds]),
                 np.stack([_weighted_corr(_weighted_ranks(p, w), label_ranks, w) for p in preds])]
    else:
        raise OsrmError(f"paired_bootstrap: unknown metric {metric!r} (use a name osrm_core.metrics.compute knows, "
                        f"or pass a score function)")
    return 100.0 * np.mean(parts, axis=0)


def _task_scores(preds: np.ndarray, labels: np.ndarray, score: ScoreFn | str, rows: np.ndarray,
                 used: np.ndarray) -> np.ndarray:
    """Scores (G, S, B) of a task on each replicate's rows (B, n), computed where used (S, B) is true (else NaN).

    A metric name is computed for all replicates at once from row multiplicities; a score function is called on
    the resampled predictions and labels (MCC, F1, correlations are not row means: both recompute the metric)."""
    if isinstance(score, str):
        g, s, n = preds.shape
        w = np.bincount((rows + n * np.arange(len(rows))[:, None]).ravel(), minlength=len(rows) * n)
        return _weighted_metric(score, preds.reshape(g * s, n), labels, w.reshape(len(rows), n).astype(np.float64)
                                ).reshape(g, s, len(rows))
    out = np.full(preds.shape[:2] + (len(rows),), np.nan)
    for b, idx in enumerate(rows):
        y, p = labels[idx], preds[..., idx]
        for s in np.flatnonzero(used[:, b]):
            for g in range(preds.shape[0]):
                out[g, s, b] = score(p[g, s], y)
    return out


def _statistic(scores: list[np.ndarray], weights: np.ndarray, normalised: bool) -> np.ndarray:
    """arm − reference (B,) from per-task scores (G, S, B) and seed weights (S, B) that sum to 1 over seeds."""
    return _weighted(_seed_diffs(scores, normalised), weights)


def _weighted(diff: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Seed-weighted mean (B,) of per-seed differences diff (S, B) with weights (S, B)."""
    return np.sum(np.where(weights > 0, diff, 0.0) * weights, axis=0)


def _seed_diffs(scores: list[np.ndarray], normalised: bool) -> np.ndarray:
    """arm − reference per seed and replicate (S, B) from per-task scores (G, S, B).

    Average: the mean over tasks of the score. Normalised: the mean over tasks of 100 · merged / individual of
    the same arm, seed and rows (groups: arm, ref, arm individual, ref individual), skipping tasks whose
    individual score is <= 0, as the report's normalised column does."""
    s = np.stack(scores)  # (T, G, S, B)
    if normalised:
        ind = s[:, 2:]
        ratio = np.where(ind > 0, 100.0 * s[:, :2] / np.where(ind > 0, ind, 1.0), np.nan)
        valid = (~np.isnan(ratio)).sum(0)
        per = np.where(valid > 0, np.nansum(ratio, 0) / np.maximum(valid, 1), 0.0)  # (2, S, B)
    else:
        per = s.mean(0)
    return per[0] - per[1]  # (S, B)


def paired_bootstrap(arm: Runs, ref: Runs, score_fns: Mapping[str, ScoreFn | str], *, n_boot: int = 1000,
                     level: float = 0.95, seed: int = 0, statistic: Literal["average", "normalised"] = "average",
                     arm_individual: Runs | None = None, ref_individual: Runs | None = None,
                     resample_seeds: bool = True) -> Bootstrap:
    """Paired bootstrap over seeds × test rows of arm − reference in the mean over tasks of the task score.

    arm, ref (and the individuals for statistic="normalised"): seed -> task -> (preds (n_task,), labels (n_task,)),
    the same seeds and, per task, the same labels (same test rows in the same order); tasks not in score_fns are
    ignored. score_fns: task -> a score function (preds, labels) -> float, or a metric name of
    osrm_core.metrics.compute (its "score", computed for all replicates at once; a function is called per replicate).
    Replicate b draws, with a numpy Generator seeded by `seed`, first for each task in score_fns order the row
    indices rng.integers(0, n_task, (B, n_task)), then the seeds rng.integers(0, S, (B, S)); both arms (and all
    seeds) use those rows, and both arms those seeds. Each replicate's value is the mean over the drawn seeds of
    (statistic of arm − statistic of ref); the interval is its (1 ± level)/2 quantiles (linear interpolation,
    as scipy.stats.bootstrap's percentile method). resample_seeds=False keeps every seed in every replicate (weight
    1/S; no seed draws are made; `per_seed` holds each seed's replicates): the rows-only bootstrap that
    osrm_core.inference adds to the seed-level variance."""
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise OsrmError(f"paired_bootstrap: need n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    named = {"arm": arm, "ref": ref}
    if statistic == "normalised":
        if arm_individual is None or ref_individual is None:
            raise OsrmError("paired_bootstrap: statistic='normalised' needs arm_individual and ref_individual runs")
        named |= {"arm_individual": arm_individual, "ref_individual": ref_individual}
    elif statistic != "average":
        raise OsrmError(f"paired_bootstrap: statistic must be 'average' or 'normalised', got {statistic!r}")
    tasks = list(score_fns)
    if not tasks:
        raise OsrmError("paired_bootstrap: score_fns is empty (give each task to compare a metric name or function)")
    seeds = _check_seeds(named, tasks)
    data = {t: _stack(named, seeds, t) for t in tasks}
    k = len(seeds)
    rng = np.random.default_rng(seed)
    rows = {t: rng.integers(0, len(data[t][1]), (n_boot, len(data[t][1]))) for t in tasks}
    if resample_seeds:
        draws = rng.integers(0, k, (n_boot, k))
        weights = np.stack([np.sum(draws == s, axis=1) for s in range(k)]) / k  # (S, B)
    else:
        weights = np.full((k, n_boot), 1.0 / k)
    normalised = statistic == "normalised"
    scores = [_task_scores(*data[t], score_fns[t], rows[t], weights > 0) for t in tasks]
    diff = _seed_diffs(scores, normalised)  # (S, B), formed once: the replicates and, rows-only, per_seed
    reps = _weighted(diff, weights)
    per_seed = None if resample_seeds else diff
    ident = np.full((k, 1), 1.0 / k)
    point = _statistic([_task_scores(*data[t], score_fns[t], np.arange(len(data[t][1]))[None], ident > 0)
                        for t in tasks], ident, normalised)
    low, high = np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Bootstrap(float(point[0]), float(low), float(high), reps, per_seed)
