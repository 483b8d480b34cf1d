"""The "Regime" section of `osrm report`: per arm with subspaces (its init's needs_subspace, osrm_core.lora.INITS),
could A_t be exactly orthogonal to the other tasks' features? Read from the subspaces' report.json of every seed (osrm_core/regime.py, docs/regimes.md)."""

from __future__ import annotations

import json

from osrm_core import regime
from osrm_core.lora import INITS
from stages.io.artifacts import Subspace
from stages.io.layout import Layout

KEYS = ("layers", "exact_layers", "median_null_dim", "median_captured_energy_vs_random", "rows_min", "rows_max",
        "d_in_min", "d_in_max", "lora_rank")
TOKENS = ("median_token_energy_vs_random",)  # absent for features without held-out Grams


def arm_regime(run, arm: str) -> dict[int, dict]:
    """{seed: regime.summarise over every task's layers} of one arm; seeds without (regime-reporting) subspaces are left out."""
    out = {}
    for seed in run.cfg.seeds:
        layout = Layout(run.layout.workdir, seed)
        layers, rank = [], None
        for task in run.tasks:
            folder = Subspace.path(layout, arm, task)
            if not (folder / "report.json").is_file():
                break
            art = Subspace.read(folder, Subspace.hint(arm, task, seed=seed), seed)  # verified, not half-written
            rows = json.loads((folder / "report.json").read_text())
            if not all("regime" in r for r in rows.values()):
                break  # built before the regime was reported
            layers += [r["regime"] for r in rows.values()]
            rank = art.manifest.rank
        else:
            if layers:
                out[seed] = regime.summarise(layers, rank)
    return out


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def regime_section(run) -> tuple[str, dict]:
    """(markdown section, {arm: numbers}) for every arm with subspaces (osrm, refit); ('', {}) when none has any.

    Numbers are those of the first seed with subspaces (metrics.json: numbers only); the line says when other seeds
    differ in their count of exact layers or median null dim."""
    lines, numbers = [], {}
    for arm, spec in run.cfg.arms.items():
        if not INITS[spec.init].needs_subspace:
            continue
        per_seed = arm_regime(run, arm)
        if not per_seed:
            lines.append(f"- `{arm}`: no subspace report with a regime (rebuild with `osrm build-subspace`)")
            continue
        seed, first = next(iter(per_seed.items()))
        numbers[arm] = {k: first[k] for k in KEYS + TOKENS if k in first}
        differ = sorted(s for s, x in per_seed.items() if (x["exact_layers"], x["median_null_dim"]) !=
                        (first["exact_layers"], first["median_null_dim"]))
        note = f" (seed {seed}; seeds {differ} differ)" if differ else f" (seed {seed}" + (
            f", same at seeds {sorted(per_seed)[1:]})" if len(per_seed) > 1 else ")")
        lines.append(f"- `{arm}`: exact null space (dim ≥ r={first['lora_rank']}) at {first['exact_layers']}/{first['layers']} "
                     f"layers × tasks, median null dim {first['median_null_dim']:g}, median captured other-task energy "
                     f"{first['median_captured_energy_vs_random']:.3g}× random, other tasks give "
                     f"{_span(first['rows_min'], first['rows_max'])} rows for d_in {_span(first['d_in_min'], first['d_in_max'])}"
                     + (f", their held-out tokens {first[TOKENS[0]]:.2f}× random" if TOKENS[0] in first else "") + note)
    if not lines:
        return "", {}
    text = ("\n## Regime (can A be orthogonal to the other tasks' features?)\n\n"
            f"Null space of the other tasks' second moment per layer; numerical rank: {regime.TOLERANCE}. "
            "Captured energy 1 = a random subspace, 0 = exactly orthogonal (docs/regimes.md).\n\n" + "\n".join(lines) + "\n")
    return text, numbers
