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


#: prefix of the in-sample scalars (Grams of the training sample that built the subspaces)
IN_SAMPLE = "in_sample_"


def _grams_scalars(part: dict) -> dict[str, float]:
    e, energy = part["interference"], part["energy"]
    out = {"median_offdiag": e["median_offdiag"], "mean_offdiag": e["mean_offdiag"], "max_offdiag": e["max_offdiag"],
           "own_energy": energy["trained"]["own_mean"], "other_energy": energy["trained"]["other_mean"]}
    if energy["init"] is not None:
        out |= {"own_energy_init": energy["init"]["own_mean"], "other_energy_init": energy["init"]["other_mean"]}
    return out


def scalars(result: dict) -> dict[str, float]:
    """summary.json of one arm and seed: median/mean/max off-diagonal E, mean own/other energy ratios (after
    training, and at init when A_0 is known) on the held-out Grams (the headline), the same on the in-sample Grams
    prefixed ``in_sample_``, and mean A drift (when A_0 is known). docs/diagnostics.md, "Held-out and in-sample"."""
    out = _grams_scalars(result)
    if "in_sample" in result:
        out |= {IN_SAMPLE + k: v for k, v in _grams_scalars(result["in_sample"]).items()}
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


def _table(pooled: dict[str, dict[str, float]], inits: dict[str, str], prefix: str, label: str) -> list[str]:
    lines = ["| arm | init | " + " | ".join(f"{c} ({label})" if c != "A drift" else c for c in COLUMNS.values()) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for arm, vals in pooled.items():
        cells = [vals.get(k if k == "drift" else prefix + k) for k in COLUMNS]
        lines.append(f"| {arm} | {inits[arm]} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in cells) + " |")
    return lines


def summary_md(pooled: dict[str, dict[str, float]], inits: dict[str, str], seeds: list[int]) -> str:
    """The markdown tables of the pooled scalars (held-out first: the headline; in-sample beside) and what they mean."""
    held = _table(pooled, inits, "", "held-out")
    in_sample = _table(pooled, inits, IN_SAMPLE, "in-sample")
    over = f"median over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
    return ("## Interference diagnostics\n\n"
            "### Held-out Grams (validation rows that built no subspace; the headline)\n\n" + "\n".join(held) + "\n\n"
            "### In-sample Grams (the training rows that built the subspaces)\n\n" + "\n".join(in_sample) + "\n\n"
            "Held-out numbers measure the adapters on inputs no subspace was solved from; in-sample ones on the very "
            "rows that chose the subspaces, where an OSRM subspace's selectivity and low E can look better than they generalise.\n"
            f"Values: {over}; figures (held-out E): seed {seeds[0]}. E_ij = task j's update's output shift on task i's tokens relative "
            "to task i's own (diagonal 1); median/mean over i != j, lower is less interference, ~1 is as loud as the own update.\n"
            "own/other: energy of the task's own / the other tasks' token second moment captured by A's row space, relative "
            "to a random subspace of the same rank (1 = random; a selective A has own > 1 > other); @init is A as training "
            "started (unknown for gaussian).\n"
            "A drift: ||A_end - A_0||_F / ||A_0||_F (0 = A frozen). From base-model Grams, first-order beyond the first layer; "
            "definitions in docs/diagnostics.md.\n")
