"""Why a task fails in a task-arithmetic merge: the scaling of its own update, or the other tasks' updates?
(docs/diagnostics.md, "Ablation: scaling or interference").

For task t, scale λ and the dense per-task updates τ_j = s_j B_j A_j (d_out × d_in per module):

    own·λ            W0 + λ τ_t                      (the merge's scaling alone, no other task)
    merge            W0 + λ Σ_j τ_j                  (task arithmetic, what the merged model serves t)
    own + λ·others   W0 + τ_t + λ Σ_{j≠t} τ_j        (the other tasks' interference alone, t unscaled)

If own·λ keeps the task and own + λ·others loses it, the loss is interference, which OSRM-style inits target;
if own·λ already loses it, no init can help and a larger λ (or a per-task λ) is the fix.
"""

from __future__ import annotations

from typing import Mapping

import torch

VARIANTS = ("own_scaled", "merge", "own_plus_others")
Updates = Mapping[str, Mapping[str, torch.Tensor]]  # task -> module -> τ (d_out × d_in)


def others_sum(deltas: Updates, task: str) -> dict[str, torch.Tensor]:
    """{module: Σ_{j≠task} τ_j (d_out × d_in)}: formed once per task, shared by every λ."""
    return {m: sum(deltas[j][m] for j in deltas if j != task) for m in deltas[task]}


def ablation_updates(own: Mapping[str, torch.Tensor], others: Mapping[str, torch.Tensor], lam: float) -> dict[str, dict[str, torch.Tensor]]:
    """variant -> {module: update (d_out × d_in)} at scale `lam` from the task's own τ_t and `others_sum`
    (the three lines of the module doc)."""
    return {"own_scaled": {m: lam * own[m] for m in own},
            "merge": {m: lam * (own[m] + others[m]) for m in own},
            "own_plus_others": {m: own[m] + lam * others[m] for m in own}}


def ablation_table(rows: list[dict]) -> str:
    """Markdown: one line per (task, λ) with the individual score and the three variants' scores.

    rows: [{"task", "lambda", "individual", "own_scaled", "merge", "own_plus_others"}] (scores in percent)."""
    lines = ["| task | λ | individual | own·λ | merge (TA) | own + λ·others |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['lambda']:g} | {r['individual']:.1f} | {r['own_scaled']:.1f} | "
                     f"{r['merge']:.1f} | {r['own_plus_others']:.1f} |")
    return "\n".join(lines)
