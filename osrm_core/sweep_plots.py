"""Plots and the table of merge-parameter sweeps: score vs the swept parameter per init (the paper's
Figure 4) and normalised score vs the number of tasks merged (its Figure 5)."""

from __future__ import annotations

import json
from pathlib import Path

from osrm_core.report import LABEL


def _axis(result: dict) -> str:
    """The swept parameter of a grid: the first one with more than one value."""
    keys = list(result["grid"][0]["params"])
    varied = [k for k in keys if len({g["params"][k] for g in result["grid"]}) > 1]
    return (varied or keys)[0]


def plot_params(results: dict, path: Path, plt) -> None:
    """Paper Figure 4: average score vs the swept parameter, one panel per method, LoRA vs LoRA+OSRM."""
    methods = sorted({m for _, m in results})
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.3), squeeze=False)
    for ax, method in zip(axes[0], methods):
        for (init, m), res in sorted(results.items()):
            if m == method:
                key = _axis(res)
                xs = [g["params"][key] for g in res["grid"]]
                ax.plot(xs, [g["average"] for g in res["grid"]], marker="o", label=LABEL.get(init, init))
                ax.set_xlabel("λ" if key == "lambda" else key)
        ax.set_title(method)
        ax.set_ylabel("average score")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tasks(results: dict, path: Path, plt) -> None:
    """Paper Figure 5: normalised score vs the number of tasks merged, per init and method."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for (init, method), res in sorted(results.items()):
        if res["tasks_curve"]:
            curve = res["tasks_curve"]
            ax.plot([c["n"] for c in curve], [c["normalised"] for c in curve], marker="o", label=f"{LABEL.get(init, init)} · {method}")
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("number of tasks merged")
    ax.set_ylabel("normalised score (% of individual)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sweep_table(results: dict) -> str:
    """Markdown: one row per (init, method, grid point)."""
    lines = ["| init | method | params | average | normalised |", "|---|---|---|---|---|"]
    for (init, method), res in sorted(results.items()):
        for g in res["grid"]:
            p = ", ".join(f"{k}={v:g}" for k, v in g["params"].items())
            lines.append(f"| {LABEL.get(init, init)} | {method} | {p} | {g['average']:.2f} | {g['normalised']:.1f} |")
    return "\n".join(lines) + "\n"


def write_plots(results: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_params(results, folder / "params.png", plt)
    plot_tasks(results, folder / "tasks.png", plt)
    (folder / "sweeps.md").write_text(sweep_table(results))
    flat = {f"{i}/{m}": r for (i, m), r in results.items()}
    (folder / "sweeps.json").write_text(json.dumps(flat, indent=1, sort_keys=True) + "\n")
