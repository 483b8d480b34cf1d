"""Summaries of the interference diagnostics: the scalars of one arm and seed, their median over seeds, and
the markdown table the report includes (docs/diagnostics.md). Pure: no I/O."""

from __future__ import annotations

import statistics
from contextlib import contextmanager

import torch


@contextmanager
def one_thread():
    """torch on one thread: the many small d x d products of energy_shares are ~25x slower with the default
    thread count on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def scalars(result: dict) -> dict[str, float]:
    """summary.json of one arm and seed: median/mean/max off-diagonal E, mean own/other energy ratios (after
    training, and at init when A_0 is known) and mean A drift (when A_0 is known)."""
    e, energy = result["interference"], result["energy"]
    out = {"median_offdiag": e["median_offdiag"], "mean_offdiag": e["mean_offdiag"], "max_offdiag": e["max_offdiag"],
           "own_energy": energy["trained"]["own_mean"], "other_energy": energy["trained"]["other_mean"]}
    if energy["init"] is not None:
        out |= {"own_energy_init": energy["init"]["own_mean"], "other_energy_init": energy["init"]["other_mean"]}
    if result["drift"] is not None:
        out["drift"] = result["drift"]["mean"]
    return out


def pool(per_seed: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{arm: {scalar: median over seeds}} of {arm: {seed: scalars}}; a scalar missing for some seed is dropped."""
    out = {}
    for arm, seeds in per_seed.items():
        keys = set.intersection(*(set(s) for s in seeds.values()))
        out[arm] = {k: float(statistics.median(s[k] for s in seeds.values())) for k in sorted(keys)}
    return out


COLUMNS = {"median_offdiag": "median E", "mean_offdiag": "mean E", "own_energy": "own", "other_energy": "other",
           "own_energy_init": "own@init", "other_energy_init": "other@init", "drift": "A drift"}


def summary_md(pooled: dict[str, dict[str, float]], inits: dict[str, str], seeds: list[int]) -> str:
    """A markdown table of the pooled scalars and what they mean."""
    lines = ["| arm | init | " + " | ".join(COLUMNS.values()) + " |", "|---|---|" + "---:|" * len(COLUMNS)]
    for arm, vals in pooled.items():
        lines.append(f"| {arm} | {inits[arm]} | " + " | ".join(f"{vals[k]:.3f}" if k in vals else "–" for k in COLUMNS) + " |")
    over = f"median over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
    return ("## Interference diagnostics\n\n" + "\n".join(lines) + "\n\n"
            f"Values: {over}; figures: seed {seeds[0]}. E_ij = task j's update's output shift on task i's tokens relative "
            "to task i's own (diagonal 1); median/mean over i != j, lower is less interference, ~1 is as loud as the own update.\n"
            "own/other: energy of the task's own / the other tasks' token second moment captured by A's row space, relative "
            "to a random subspace of the same rank (1 = random; a selective A has own > 1 > other); @init is A as training "
            "started (unknown for gaussian).\n"
            "A drift: ||A_end - A_0||_F / ||A_0||_F (0 = A frozen). From base-model Grams, first-order beyond the first layer; "
            "definitions in docs/diagnostics.md.\n")
