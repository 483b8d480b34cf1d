"""Plots of interference results (osrm_core.diagnose.Interference), one figure per call; see docs/diagnostics.md.

matplotlib is imported lazily with the Agg backend, so importing this module needs no display.
"""

from __future__ import annotations

import re
from pathlib import Path

from osrm_core.diagnose import Interference
from osrm_core.errors import OsrmError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _check_arms(results: dict[str, Interference], what: str) -> Interference:
    """The first arm's result; every arm must have the same tasks and modules (one shared axis)."""
    if not results:
        raise OsrmError(f"{what}: no arms to plot — diagnose at least one init")
    first = next(iter(results.values()))
    for arm, res in results.items():
        if res.tasks != first.tasks or res.modules != first.modules:
            raise OsrmError(f"{what}: arm '{arm}' has other tasks/modules than the first arm — diagnose every arm on the same suite and lora.blocks")
    return first


def heatmaps(results: dict[str, Interference], path: Path) -> None:
    """One annotated E heatmap per arm ({arm: result}), side by side on one colour scale, saved as PNG at `path`."""
    first = _check_arms(results, "heatmaps")
    plt = _pyplot()
    tasks, n = first.tasks, len(first.tasks)
    vmax = max(1.0, *(float(r.matrix.max()) for r in results.values()))
    side = 1.0 + 0.55 * n
    fig, axes = plt.subplots(1, len(results), figsize=(side * len(results) + 1.2, side + 0.6),
                             squeeze=False, sharey=True)
    for ax, (arm, res) in zip(axes[0], results.items()):
        e = res.matrix.numpy()
        im = ax.imshow(e, vmin=0.0, vmax=vmax, cmap="viridis")
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{e[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if e[i, j] > 0.6 * vmax else "white")
        ax.set_xticks(range(n), tasks, rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("update of task j")
        ax.set_title(f"{arm}: median off-diag {res.median_offdiag():.2f}", fontsize=9)
    axes[0][0].set_yticks(range(n), tasks, fontsize=7)
    axes[0][0].set_ylabel("inputs of task i")
    fig.suptitle("E_ij: task j's update (column) on task i's inputs (row), relative to task i's own", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _short(module: str) -> str:
    """'encoder.layer.3.attention.self.query' -> '3.query' (first layer index and last name); else the name."""
    index = re.search(r"\.(\d+)\.", module)
    return f"{index.group(1)}.{module.rsplit('.', 1)[-1]}" if index else module


def per_layer(results: dict[str, Interference], path: Path) -> None:
    """Median off-diagonal E^(m) per target module (model order), one line per arm, saved as PNG at `path`."""
    first = _check_arms(results, "per-layer plot")
    plt = _pyplot()
    x = range(len(first.modules))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.5 + 0.35 * len(first.modules)), 3.4))
    for arm, res in results.items():
        ax.plot(x, res.module_medians(), marker="o", ms=3, label=f"{arm} (overall {res.median_offdiag():.2f})")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, [_short(m) for m in first.modules], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("median off-diagonal E (per module)")
    ax.set_title(f"Interference per target module ({len(first.tasks)} tasks)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
