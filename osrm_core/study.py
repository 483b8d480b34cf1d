"""The study (docs/study.md), pure: the validation grid of each merge method and its three test variants, and
the statistics of the report assembled from loaded test predictions (no I/O).

Predictions are `Preds`: seed (str) -> task -> preds (n_task,) (class ids or regression values, test rows in
dataset order); every arm, seed and model is scored on the same rows, so they pair (docs/statistics.md).
"""

from __future__ import annotations

import itertools
import math
from typing import Mapping, NamedTuple

import numpy as np

from osrm_core.errors import OsrmError
from osrm_core.merge import get_method, parse_params
from osrm_core.metrics import compute
from osrm_core.report import normalised_score
from osrm_core.selection import params_key
from osrm_core.stats import mean_sd, paired_bootstrap, t_interval, verdict

SCALE = {"tsv_m": "alpha", "iso_c": "alpha"}  # their α scales the merged update as λ does elsewhere
VARIANTS = ("chosen", "default", "lambda1")
LEARNT_MARGIN = 5.0  # a task is learnt when its individual adapter beats the pretrained body (task head only) by this much
Preds = Mapping[str, Mapping[str, np.ndarray]]


class Plan(NamedTuple):
    """What `osrm select` scores for one method: the validation grid (the default first) and the λ = 1 point."""

    method: str
    default: dict  # merge.methods[method], as written
    grid: list[dict]  # [] = nothing to choose: chosen = default
    lambda1: dict | None  # None: the method has no scale λ


def scale_param(name: str) -> str | None:
    """The key of the method's scale λ ('lambda', or 'alpha' for tsv_m / iso_c), None when it has none."""
    if name in SCALE:
        return SCALE[name]
    fields = get_method(name).params.model_fields.values()
    return "lambda" if any(f.alias == "lambda" for f in fields) else None


def plan(name: str, default: dict, grid: Mapping[str, list[float]] | None) -> Plan:
    """Validated grid of `name`: the default point (its values of the grid keys made explicit) first, then
    the product of `grid` over the default, duplicates dropped (so ties in validation prefer the default)."""
    m = get_method(name)
    base = parse_params(m, default, f"merge.methods.{name}").model_dump(mode="json", by_alias=True)
    points: list[dict] = []
    if grid:
        for key in grid:
            if key not in base:
                raise OsrmError(f"merge.sweep.{name}.{key}: '{name}' has no parameter '{key}' — use one of {sorted(base)}")
        first = {**default, **{k: base[k] for k in grid}}
        combos = [{**default, **dict(zip(grid, v))} for v in itertools.product(*grid.values())]
        points = list({params_key(p): p for p in [first, *combos]}.values())
        for p in points:
            parse_params(m, p, f"merge.sweep.{name}")
    scale = scale_param(name)
    return Plan(name, dict(default), points, {**default, scale: 1.0} if scale else None)


def variant_params(p: Plan, chosen: dict) -> dict[str, dict]:
    """variant -> parameters: chosen (on validation), default (merge.methods), lambda1 (where the method has λ)."""
    out = {"chosen": chosen, "default": p.default}
    return out | ({"lambda1": p.lambda1} if p.lambda1 is not None else {})


def lambda_curve(grid: list[dict], scale: str) -> list[dict]:
    """Validation average vs the scale λ: for each λ of the grid the best average over the other parameters
    (the profile), sorted by λ. grid: [{"params", "average"}]."""
    best: dict[float, float] = {}
    for g in grid:
        lam = float(g["params"][scale])
        best[lam] = max(best.get(lam, -math.inf), g["average"])
    return [{"lambda": lam, "average": avg} for lam, avg in sorted(best.items())]


class Rows(NamedTuple):
    """The test rows of one task: its metric name (osrm_core.metrics.compute), labels (n,), regression or not."""

    metric: str
    labels: np.ndarray


def seed_scores(preds: Preds, rows: Mapping[str, Rows]) -> dict[str, dict[str, float]]:
    """seed -> task -> score (the task metric's mean, percent) recomputed from the predictions."""
    return {s: {t: compute(rows[t].metric, p[t], rows[t].labels)["score"] for t in rows} for s, p in preds.items()}


def summary(scores: Mapping[str, Mapping[str, float]], individual: Mapping[str, Mapping[str, float]] | None) -> dict:
    """mean ± sd over seeds of the average (and of the normalised score, when the arm's individual scores are
    given), and the per-task means. NaN sds (one seed) are left out."""
    avgs = [float(np.mean(list(s.values()))) for s in scores.values()]
    out = dict(zip(("average", "average_sd"), mean_sd(avgs)))
    if individual is not None:
        norms = [normalised_score(scores[s], individual[s]) for s in scores]
        out |= dict(zip(("normalised", "normalised_sd"), mean_sd(norms)))
    tasks = next(iter(scores.values()))
    out["tasks"] = {t: float(np.mean([scores[s][t] for s in scores])) for t in tasks}
    out["n_seeds"] = len(scores)
    return {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}


def _runs(preds: Preds, rows: Mapping[str, Rows]):
    return {s: {t: (p[t], rows[t].labels) for t in rows} for s, p in preds.items()}


def compare(arm: Preds, ref: Preds, rows: Mapping[str, Rows], arm_ind: Preds | None = None, ref_ind: Preds | None = None,
            n_boot: int = 1000, seed: int = 0) -> dict:
    """arm − reference: the paired bootstrap over seeds × test rows of the average (diff, ci_low, ci_high) and,
    with the individuals, of the normalised score (norm_diff, norm_ci_low, norm_ci_high); the t-interval over
    seeds of the average (t_low, t_high; absent with one seed); verdict_code 1 better, -1 worse, 0 inconclusive
    (always 0 with one seed) from the bootstrap interval."""
    fns = {t: r.metric for t, r in rows.items()}
    k = len(arm)
    boot = paired_bootstrap(_runs(arm, rows), _runs(ref, rows), fns, n_boot=n_boot, seed=seed)
    out = {"diff": boot.estimate, "ci_low": boot.low, "ci_high": boot.high, "verdict_code": _code(boot.low, boot.high, k)}
    a, r = seed_scores(arm, rows), seed_scores(ref, rows)
    diffs = [float(np.mean(list(a[s].values())) - np.mean(list(r[s].values()))) for s in a]
    out["t_low"], out["t_high"] = t_interval(diffs)
    if arm_ind is not None and ref_ind is not None:
        nb = paired_bootstrap(_runs(arm, rows), _runs(ref, rows), fns, n_boot=n_boot, seed=seed, statistic="normalised",
                              arm_individual=_runs(arm_ind, rows), ref_individual=_runs(ref_ind, rows))
        out |= {"norm_diff": nb.estimate, "norm_ci_low": nb.low, "norm_ci_high": nb.high,
                "norm_verdict_code": _code(nb.low, nb.high, k)}
    return {k_: v for k_, v in out.items() if not math.isnan(v)}


def chance_score(rows: Rows) -> float:
    """The best score a constant prediction gets on these rows: any one class for classification (the majority
    class for accuracy; for accuracy_f1 predicting the positive class can beat it), 0 for a regression (a
    correlation with a constant is 0)."""
    if rows.metric == "pearson_spearman":
        return 0.0
    return max(compute(rows.metric, np.full(len(rows.labels), c), rows.labels)["score"] for c in np.unique(rows.labels))


def task_check(numbers: dict, rows: Mapping[str, Rows], reference: str, margin: float = LEARNT_MARGIN) -> dict:
    """task -> {chance, head_only, individual, gain, learnt (1/0)}: is every task learnt by the reference arm's
    individual adapters (mean over seeds ≥ pretrained-with-its-head + margin, and above chance)? A task that is
    not learnt adds noise, not signal, to every merge average (docs/evaluation.md)."""
    out = {}
    for t, r in rows.items():
        head, ind, chance = numbers["base"]["tasks"][t], numbers[reference]["individual"]["tasks"][t], chance_score(r)
        out[t] = {"chance": chance, "head_only": head, "individual": ind, "gain": ind - head,
                  "learnt": int(ind >= head + margin and ind > chance)}
    return out


def _code(low: float, high: float, n_seeds: int) -> int:
    return {"better": 1, "worse": -1}.get(verdict(low, high, n_seeds), 0)


def study(models: Mapping[str, Mapping[str, Preds]], base: Preds, rows: Mapping[str, Rows], reference: str,
          n_boot: int = 1000, seed: int = 0) -> dict:
    """The report's numbers: {"base": summary, arm: {"individual": summary (+ comparison), method: summary of the
    chosen variant + comparison, with "default" / "lambda1" sub-dicts alike}}.

    models: arm -> model key -> Preds, keys 'individual' and '<method>@<variant>' (variant in VARIANTS)."""
    if reference not in models:
        raise OsrmError(f"study: the reference arm '{reference}' has no results — run `osrm select --arm {reference}`")
    scores = {a: {key: seed_scores(p, rows) for key, p in ms.items()} for a, ms in models.items()}
    out: dict = {"base": summary(seed_scores(base, rows), None)}
    for arm, ms in models.items():
        ind = scores[arm]["individual"]
        node = out[arm] = {"individual": summary(ind, None)}
        if arm != reference:
            node["individual"] |= compare(ms["individual"], models[reference]["individual"], rows, n_boot=n_boot, seed=seed)
        for key in ms:
            if key == "individual":
                continue
            method, variant = key.split("@")
            entry = summary(scores[arm][key], ind)
            if arm != reference:
                entry |= compare(ms[key], models[reference][key], rows, ms["individual"],
                                 models[reference]["individual"], n_boot, seed)
            target = node.setdefault(method, {})
            if variant == "chosen":
                target.update(entry)
            else:
                target[variant] = entry
    return out
