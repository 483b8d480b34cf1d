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
from threadpoolctl import threadpool_limits

from osrm_core.errors import OsrmError
from osrm_core.merge import get_method
from osrm_core.metrics import compute
from osrm_core.report import normalised_score
from osrm_core.selection import params_key
from osrm_core.inference import RowTerm, adjusted_verdict, holm, seed_interval
from osrm_core.stats import mean_sd, paired_bootstrap, t_interval, verdict
from osrm_core.tasks.spec import ROW_MEAN_METRICS

VARIANTS = ("chosen", "default", "lambda1")
LEARNT_MARGIN = 5.0  # a task is learnt when its individual adapter beats the model without adapter by this much: the
#   pretrained body with the task head (classification), the prompted base model zero-shot (generative)
Preds = Mapping[str, Mapping[str, np.ndarray]]


class Plan(NamedTuple):
    """What `osrm select` scores for one method: the validation grid (the default first) and the λ = 1 point."""

    method: str
    default: dict  # merge.methods[method], as written
    grid: list[dict]  # [] = nothing to choose: chosen = default
    lambda1: dict | None  # None: the method has no scale λ


def plan(name: str, default: dict, grid: Mapping[str, list[float]] | None) -> Plan:
    """The grid of `name`: the default point (its values of the grid keys made explicit) first, then the product
    of `grid` over the default, duplicates dropped (so ties in validation prefer the default). `default` and
    `grid` are merge.methods / merge.sweep as the config checked them when it loaded (check_merge_config)."""
    m = get_method(name)
    base = m.params.model_validate(default).model_dump(mode="json", by_alias=True)
    points: list[dict] = []
    if grid:
        first = {**default, **{k: base[k] for k in grid}}
        combos = [{**default, **dict(zip(grid, v))} for v in itertools.product(*grid.values())]
        points = list({params_key(p): p for p in [first, *combos]}.values())
    return Plan(name, dict(default), points, {**default, m.scale: 1.0} if m.scale else None)


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


def _interval(prefix: str, diffs: list[float], per_seed: np.ndarray, k: int, level: float, row_term: RowTerm) -> dict:
    si = seed_interval(diffs, per_seed, level, row_term)
    return {f"{prefix}diff": si.estimate, f"{prefix}ci_low": si.low, f"{prefix}ci_high": si.high, f"{prefix}se": si.se,
            f"{prefix}df": si.df, f"{prefix}p": si.p, f"{prefix}verdict_code": _code(si.low, si.high, k)}


@threadpool_limits.wrap(limits=1, user_api="blas")  # (M, n) @ (n, B) products of ~1e5 flops: threads only wait
def compare(arm: Preds, ref: Preds, rows: Mapping[str, Rows], arm_ind: Preds | None = None, ref_ind: Preds | None = None,
            n_boot: int = 1000, seed: int = 0, level: float = 0.95, row_term: RowTerm = "cross") -> dict:
    """arm − reference with the seed-level interval (osrm_core.inference; docs/statistics.md) of the average
    (diff, ci_low, ci_high, se, df, p, verdict_code) and, with the individuals, of the normalised score (norm_*):
    per-seed differences plus a rows-only paired bootstrap (n_boot replicates, seeded; row_term: which share of it,
    osrm_core.inference.row_variance). t_low, t_high: the plain
    t-interval over seeds (seed variation only), shown beside it. verdict_code 1 better, -1 worse, 0 inconclusive
    (always 0 with one seed); NaNs (one seed) are left out."""
    fns = {t: r.metric for t, r in rows.items()}
    k = len(arm)
    a, r = seed_scores(arm, rows), seed_scores(ref, rows)
    diffs = [float(np.mean(list(a[s].values())) - np.mean(list(r[s].values()))) for s in a]
    boot = paired_bootstrap(_runs(arm, rows), _runs(ref, rows), fns, n_boot=n_boot, seed=seed, resample_seeds=False)
    out = _interval("", diffs, boot.per_seed, k, level, row_term)
    out["t_low"], out["t_high"] = t_interval(diffs, level)
    if arm_ind is not None and ref_ind is not None:
        ai, ri = seed_scores(arm_ind, rows), seed_scores(ref_ind, rows)
        norm = [normalised_score(a[s], ai[s]) - normalised_score(r[s], ri[s]) for s in a]
        nb = paired_bootstrap(_runs(arm, rows), _runs(ref, rows), fns, n_boot=n_boot, seed=seed, statistic="normalised",
                              arm_individual=_runs(arm_ind, rows), ref_individual=_runs(ref_ind, rows),
                              resample_seeds=False)
        out |= _interval("norm_", norm, nb.per_seed, k, level, row_term)
    return {k_: v for k_, v in out.items() if not math.isnan(v)}


def adjust_primary(numbers: dict, reference: str, primary: list[str], alpha: float = 0.05) -> None:
    """Holm-adjust the primary family in place: for every arm but the reference and every method in `primary`, the
    validation-chosen comparison gets p_holm, primary = 1 and the verdict of the adjusted p-value. Every other
    comparison (paper-default, λ = 1, individual adapters, normalised scores, other methods) keeps primary = 0 and
    the verdict of its own unadjusted interval: exploratory (docs/statistics.md)."""
    family = [numbers[a][m] for a in numbers if a not in (reference, "base", "task_check")
              for m in primary if "diff" in numbers[a].get(m, {})]
    for entry, p in zip(family, holm([e.get("p", math.nan) for e in family])):
        entry["primary"] = 1
        if not math.isnan(p):
            entry["p_holm"] = p
        entry["verdict_code"] = {"better": 1, "worse": -1}.get(adjusted_verdict(entry["diff"], p, alpha), 0)


def chance_score(rows: Rows) -> float:
    """The best score a constant prediction gets on these rows: any one class for classification (the majority
    class for accuracy; for accuracy_f1 predicting the positive class can beat it), 0 for a regression (a
    correlation with a constant is 0), 0 for generated text (its rows hold scores, not classes: no constant answer is
    defined, and the zero-shot model is the floor that matters)."""
    if rows.metric == "pearson_spearman" or rows.metric in ROW_MEAN_METRICS:
        return 0.0
    return max(compute(rows.metric, np.full(len(rows.labels), c), rows.labels)["score"] for c in np.unique(rows.labels))


def task_check(numbers: dict, rows: Mapping[str, Rows], reference: str, margin: float = LEARNT_MARGIN) -> dict:
    """task -> {chance, floor, individual, gain, learnt (1/0)}: is every task learnt by the reference arm's
    individual adapters (mean over seeds ≥ floor + margin, and above chance)? The floor is the `base` model, the
    backbone without adapter: with the task head (classification) or prompted zero-shot (generative). A task that is
    not learnt adds noise, not signal, to every merge average (docs/evaluation.md)."""
    out = {}
    for t, r in rows.items():
        floor, ind, chance = numbers["base"]["tasks"][t], numbers[reference]["individual"]["tasks"][t], chance_score(r)
        out[t] = {"chance": chance, "floor": floor, "individual": ind, "gain": ind - floor,
                  "learnt": int(ind >= floor + margin and ind > chance)}
    return out


def _code(low: float, high: float, n_seeds: int) -> int:
    return {"better": 1, "worse": -1}.get(verdict(low, high, n_seeds), 0)


def study(models: Mapping[str, Mapping[str, Preds]], base: Preds, rows: Mapping[str, Rows], reference: str,
          n_boot: int = 1000, seed: int = 0, primary: tuple[str, ...] = (), level: float = 0.95) -> dict:
    """The report's numbers: {"base": summary, arm: {"individual": summary (+ comparison), method: summary of the
    chosen variant + comparison, with "default" / "lambda1" sub-dicts alike}}. Every comparison carries primary = 0
    except the validation-chosen rows of the `primary` methods, which are Holm-adjusted together (adjust_primary).

    models: arm -> model key -> Preds, keys 'individual' and '<method>@<variant>' (variant in VARIANTS)."""
    if reference not in models:
        raise OsrmError(f"study: the reference arm '{reference}' has no results — run `osrm select --arm {reference}`")
    scores = {a: {key: seed_scores(p, rows) for key, p in ms.items()} for a, ms in models.items()}
    out: dict = {"base": summary(seed_scores(base, rows), None)}
    for arm, ms in models.items():
        ind = scores[arm]["individual"]
        node = out[arm] = {"individual": summary(ind, None)}
        if arm != reference:
            node["individual"] |= compare(ms["individual"], models[reference]["individual"], rows, n_boot=n_boot,
                                          seed=seed, level=level) | {"primary": 0}
        for key in ms:
            if key == "individual":
                continue
            method, variant = key.split("@")
            entry = summary(scores[arm][key], ind)
            if arm != reference:
                entry |= compare(ms[key], models[reference][key], rows, ms["individual"],
                                 models[reference]["individual"], n_boot, seed, level) | {"primary": 0}
            target = node.setdefault(method, {})
            if variant == "chosen":
                target.update(entry)
            else:
                target[variant] = entry
    adjust_primary(out, reference, list(primary), 1.0 - level)
    return out
