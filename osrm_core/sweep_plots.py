"""Curves of the merge-parameter selections (`osrm select` results, pooled over seeds): validation average vs
the scale λ per arm (the paper's Figure 4) and normalised score vs the number of tasks merged (its Figure 5),
as data rows (DVC plots) and PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from osrm_core.merge import get_method
from osrm_core.report import label
from osrm_core.study import lambda_curve


def lambda_rows(selections: dict[str, list[dict]], method: str) -> list[dict]:
    """[{"arm", "lambda", "average", "average_sd"}]: per arm and λ the mean (sd) over seeds of the validation
    profile (best average over the other grid parameters at that λ). selections: arm -> results.json per seed.
    Empty when the method has no λ or no grid."""
    scale, rows = get_method(method).scale, []
    for arm, per_seed in selections.items():
        grids = [r["methods"][method]["grid"] for r in per_seed if method in r["methods"]]
        if not scale or not grids or not grids[0]:
            continue
        curves = [{c["lambda"]: c["average"] for c in lambda_curve(g, scale)} for g in grids]
        for lam in sorted(set.intersection(*(set(c) for c in curves))):
            vals = [c[lam] for c in curves]
            rows.append({"arm": arm, "lambda": lam, "average": float(np.mean(vals)),
                         "average_sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0})
    return rows


def tasks_rows(selections: dict[str, list[dict]], method: str) -> list[dict]:
    """[{"arm", "n", "normalised"}]: the validation normalised score of the first n tasks merged, mean over seeds."""
    rows = []
    for arm, per_seed in selections.items():
        curves = [r["methods"][method]["tasks_curve"] for r in per_seed if method in r["methods"]]
        if curves and curves[0]:
            for i, point in enumerate(curves[0]):
                rows.append({"arm": arm, "n": point["n"], "normalised": float(np.mean([c[i]["normalised"] for c in curves]))})
    return rows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_lambda(curves: dict[str, list[dict]], path: Path) -> None:
    """One panel per method: validation average vs λ, one line per arm."""
    plt = _pyplot()
    methods = [m for m, rows in curves.items() if rows]
    fig, axes = plt.subplots(1, max(len(methods), 1), figsize=(4.2 * max(len(methods), 1), 3.3), squeeze=False)
    for ax, method in zip(axes[0], methods):
        for arm in dict.fromkeys(r["arm"] for r in curves[method]):
            rows = [r for r in curves[method] if r["arm"] == arm]
            ax.plot([r["lambda"] for r in rows], [r["average"] for r in rows], marker="o", label=label(arm))
        ax.set(title=method, xlabel="λ (scale)", ylabel="validation average")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tasks(curves: dict[str, list[dict]], path: Path) -> None:
    """Normalised validation score vs the number of tasks merged, per arm and method. Without any curve (no method
    in merge.sweep_tasks) the file is still written, saying so: DVC declares it as a plot of the report stage."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if not any(curves.values()):
        ax.text(0.5, 0.5, "no curve: merge.sweep_tasks names no merged method", ha="center", va="center")
        ax.set_axis_off()
    else:
        for method, rows in curves.items():
            for arm in dict.fromkeys(r["arm"] for r in rows):
                pts = [r for r in rows if r["arm"] == arm]
                ax.plot([r["n"] for r in pts], [r["normalised"] for r in pts], marker="o", label=f"{label(arm)} · {method}")
        ax.axhline(100, color="grey", lw=0.8, ls="--")
        ax.set(xlabel="number of tasks merged", ylabel="normalised score (% of individual)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_normalised(numbers: dict, arms: list[str], methods: list[str], path: Path) -> None:
    """Bars: normalised test score (mean over seeds, sd as error bar) of each method's chosen merge, per arm."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(methods), 3.4))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        vals = [numbers[arm][m].get("normalised", 0.0) for m in methods]
        err = [numbers[arm][m].get("normalised_sd", 0.0) for m in methods]
        ax.bar([j + (i - (len(arms) - 1) / 2) * width for j in range(len(methods))], vals, width, yerr=err, label=label(arm))
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(methods)), methods, rotation=15)
    ax.set_ylabel("normalised score (% of individual)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
