"""The regime map (docs/regimes.md): where OSRM's A can be orthogonal to the other tasks' features, and what the
merge gains there. Pure functions of numbers already computed (no I/O): per arm its regime (null-space dimension of
the other tasks' second moment, osrm_core.regime) and its comparisons with the reference arm and with a control arm
of the same ‖A₀‖ (two runs of osrm_core.study.study, one per comparator), as a table and a plot.

A point "helps" only when it beats both comparators: better than the reference and better than the control, each
by its own Holm-adjusted family of validation-chosen merges (osrm_core.study.adjust_primary)."""

from __future__ import annotations

import math
from pathlib import Path

COMPARISONS = (("task_arithmetic", None), ("ties", None), ("task_arithmetic", "lambda1"), ("ties", "lambda1"),
               ("individual", None))  # (key of the study's numbers, variant); None = the validation-chosen row
KEEP = ("diff", "ci_low", "ci_high", "p", "p_holm", "verdict_code", "primary")


def _entry(node: dict, key: str, variant: str | None) -> dict | None:
    e = node.get(key, {})
    e = e.get(variant, {}) if variant else e
    return {k: e[k] for k in KEEP if k in e} if "diff" in e else None


def comparisons(numbers: dict, arm: str) -> dict[str, dict]:
    """'method' / 'method@lambda1' / 'individual' -> {diff, ci_low, ci_high, p, p_holm?, verdict_code, primary} of one
    arm in a study's numbers (osrm_core.study.study); rows without a comparison are left out."""
    out = {}
    for key, variant in COMPARISONS:
        entry = _entry(numbers.get(arm, {}), key, variant)
        if entry is not None:
            out[key + (f"@{variant}" if variant else "")] = entry
    return out


def point(arm: str, regime: dict | None, energy_init: float | None, vs_ref: dict, vs_ctl: dict) -> dict:
    """One arm of the map: x = null-space fraction (median null dim / d_in; 0 without an exact null space) and the
    held-out other-task token energy at init (1 = a random A), y = the comparisons with reference and control."""
    frac = None if regime is None else regime["median_null_dim"] / regime["d_in_max"]
    return {"arm": arm, "null_fraction": frac, "regime": regime, "other_energy_init": energy_init,
            "vs_reference": comparisons(vs_ref, arm), "vs_control": comparisons(vs_ctl, arm)}


def helps(p: dict, method: str) -> bool:
    """Better than the reference and than the control (Holm-adjusted verdict codes of the chosen merge)."""
    return all(p[side].get(method, {}).get("verdict_code") == 1 for side in ("vs_reference", "vs_control"))


def _cell(e: dict | None) -> str:
    if e is None:
        return "–"
    word = {1: "better", -1: "worse"}.get(e["verdict_code"], "inconclusive")
    holm = f", p_Holm {e['p_holm']:.2f}" if "p_holm" in e else ""
    return f"{e['diff']:+.1f} [{e['ci_low']:.1f}, {e['ci_high']:.1f}] {word}{holm}"


def table(m: dict) -> str:
    """Markdown: one row per arm with a regime (null dim, fraction, token energy at init), then each comparison
    with the reference and with the control (Δ [seed-level interval] verdict)."""
    cols = [k + (f"@{v}" if v else "") for k, v in COMPARISONS]
    head = ("| arm | rows / d_in | median null dim | null fraction | other-task energy at init | vs | "
            + " | ".join(c.replace("@lambda1", " λ=1").replace("task_arithmetic", "TA").replace("ties", "TIES")
                         for c in cols) + " |")
    lines = [head, "|" + "---|" * (6 + len(cols))]
    for p in m["points"]:
        r = p["regime"]
        where = "–" if r is None else f"{r['rows_max']} / {r['d_in_max']}"
        null = "–" if r is None else f"{r['median_null_dim']:g}"
        frac = "–" if p["null_fraction"] is None else f"{p['null_fraction']:.2f}"
        energy = "–" if p["other_energy_init"] is None else f"{p['other_energy_init']:.2f}"
        for side, name in (("vs_reference", m["reference"]), ("vs_control", m["control"])):
            if p["arm"] == name:
                continue
            cells = " | ".join(_cell(p[side].get(c)) for c in cols)
            lines.append(f"| `{p['arm']}` | {where} | {null} | {frac} | {energy} | {name} | {cells} |")
            where = null = frac = energy = '"'
    return "\n".join(lines)


def plot(m: dict, path: Path) -> None:
    """Δ (seed-level interval) of the chosen TA and TIES merges per arm with a regime, arms ordered by their null-space
    fraction (tick labels: arm, null fraction, other-task energy at init); one panel per comparator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted((p for p in m["points"] if p["null_fraction"] is not None), key=lambda p: p["null_fraction"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, (side, name) in zip(axes, (("vs_reference", m["reference"]), ("vs_control", m["control"]))):
        for dodge, (method, marker) in zip((-0.12, 0.12), (("task_arithmetic", "o"), ("ties", "s"))):
            xs, ys, lo, hi = [], [], [], []
            for i, p in enumerate(pts):
                e = p[side].get(method)
                if e is not None and not math.isnan(e["ci_low"]):
                    xs.append(i + dodge), ys.append(e["diff"])
                    lo.append(e["diff"] - e["ci_low"]), hi.append(e["ci_high"] - e["diff"])
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, capsize=3, label=method)
        energy = ["–" if p["other_energy_init"] is None else f"{p['other_energy_init']:.2f}" for p in pts]
        ax.set_xticks(range(len(pts)), [f"{p['arm']}\nnull {p['null_fraction']:.2f}\nE₀ {e}" for p, e in zip(pts, energy)],
                      fontsize=7)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"{m['backbone']}: Δ vs {name} ({len(m['seeds'])} seeds)")
    axes[0].set_ylabel("Δ average test score (points, chosen merge)")
    axes[0].legend()
    fig.text(0.5, 0.01, "null = median null dim / d_in of the other tasks' rows; E₀ = their held-out token energy "
             "captured by A at init (1 = random)", ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
