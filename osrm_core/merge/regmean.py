"""RegMean: merge each linear layer by the closed-form solution of a regression on the task inputs.

Paper: Jin, Ren, Preotiuc-Pietro, Cheng, "Dataless Knowledge Fusion by Merging Weights of Language
Models", ICLR 2023, arXiv:2212.09849.
Variant: per linear module, with the input Grams ``G_t = X_t^T X_t`` (d_in × d_in) and
``G'_t = α G_t + (1 − α) diag(G_t)`` (off-diagonals scaled by α = 0.9):
``W = (Σ_t W_t G'_t)(Σ_t G'_t)^{-1}`` in our ``d_out × d_in`` layout (the paper's
``W^T = (Σ G'_t)^{-1} Σ G'_t W_t^T``), with ``W_t = W0 + τ_t``.  Because
``W0 (Σ G'_t)(Σ G'_t)^{-1} = W0`` the base cancels exactly, and we compute the update directly,
``Δ = (Σ_t τ_t G'_t)(Σ_t G'_t + ρ I)^{-1}``, so W0 is not needed and the small ridge ρ (relative to the
mean diagonal, for stability when some input directions carry no energy) shrinks only the update.
Gram weighting (``gram_weighting``): ``token_mean`` (default, as the authors' code, which averages
the Gram over the tokens it saw) merges ``G_t / n_t`` with n_t = ``ModuleUpdates.counts[t]``, so a task
with more feature tokens does not dominate; ``sum`` merges the raw token sums ``G_t`` (the previous
behaviour).  Approximation (documented in docs/merging.md): our Grams are computed on the BASE
model's features of each task's data (the OSRM feature cache), while the paper uses each
fine-tuned model's own inputs to the layer.  Solved in float64.  The result is exact in factor space: ``Δ = [B_1 … B_T] · [s_t A_t G'_t M^{-1}]_t``,
a rank-Σ r_t adapter.
"""

from __future__ import annotations

import torch
from typing import Literal

from pydantic import Field
from torch import Tensor

from osrm_core.errors import OsrmError
from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """RegMean parameters."""

    alpha: float = Field(
        0.9, ge=0, le=1, description="scale of the Gram off-diagonals (1 = plain RegMean, 0 = diagonal-only)"
    )
    ridge: float = Field(1e-6, ge=0, description="ridge ρ added to Σ G'_t, relative to its mean diagonal entry")
    normalize: bool = Field(
        False, description="divide each G_t by its trace first, so tasks with more tokens do not dominate"
    )
    gram_weighting: Literal["token_mean", "sum"] = Field(
        "token_mean", description="token_mean: merge G_t / n_t (per-token mean, as the authors); sum: raw G_t"
    )


def shrink_gram(G: Tensor, alpha: float, normalize: bool, count: int | None = None) -> Tensor:
    """``G' = α G + (1 − α) diag(G)`` in float64 (d_in × d_in), of ``G / count`` when a token count is
    given, optionally divided by tr(G)."""
    G = G.double()
    if count is not None:
        G = G / count
    if normalize and float(G.trace()) > 0:
        G = G / G.trace()
    return alpha * G + (1 - alpha) * torch.diag(torch.diagonal(G))


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """Factors ``A = [s_t A_t G'_t]_t M^{-1}`` (R × d_in), ``B = [B_1 … B_T]`` (d_out × R), with
    ``M = Σ_t G'_t + ρ I`` (symmetric), so ``B @ A = (Σ_t τ_t G'_t) M^{-1}``."""
    updates.require("grams")
    if params.gram_weighting == "token_mean" and updates.counts is None:
        where = f"module {updates.name!r}" if updates.name else "regmean"
        fix = "pass ModuleUpdates(counts=...) (the feature cache's token count per task) or set gram_weighting: sum"
        raise OsrmError(f"{where}: regmean gram_weighting 'token_mean' needs per-task token counts; {fix}.")
    counts = updates.counts if params.gram_weighting == "token_mean" else [None] * updates.num_tasks
    d_in = updates.shape[1]
    M = torch.zeros(d_in, d_in, dtype=torch.float64, device=updates.A[0].device)
    rows = []
    for t in range(updates.num_tasks):
        G = shrink_gram(updates.grams[t], params.alpha, params.normalize, counts[t])
        M += G
        rows.append(float(updates.scale[t]) * (updates.A[t].double() @ G))  # s_t A_t G'_t, r_t × d_in
    ridge = params.ridge * float(torch.diagonal(M).mean())
    M.diagonal().add_(ridge if ridge > 0 else 0.0)
    # A_new = N M^{-1}  ⇔  M A_new^T = N^T (M symmetric)
    try:
        A = torch.linalg.solve(M, torch.cat(rows, dim=0).T).T
    except RuntimeError:  # torch.linalg.LinAlgError: singular Σ G'_t
        where = f"module {updates.name!r}" if updates.name else "regmean"
        fix = "set the regmean ridge > 0 (e.g. 1e-6) or alpha < 1"
        raise OsrmError(f"{where}: the summed input Gram is singular; {fix}.") from None
    B = torch.cat([b.double() for b in updates.B], dim=1)
    return MergeResult(factors=(A.float(), B.float()), info={"rank": A.shape[0], "ridge_abs": ridge})


METHOD = MergeMethod(
    name="regmean",
    params=Params,
    fn=merge,
    paper="Jin et al. 2023, Dataless Knowledge Fusion by Merging Weights of Language Models, arXiv:2212.09849",
    needs=("grams",),
    low_rank=True,
)
