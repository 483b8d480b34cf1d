"""TSV-M: Task Singular Vectors merging (low-rank compression + interference decorrelation).

Paper: Gargiulo, Crisostomi, Bucarelli, Scardapane, Silvestri, Rodolà, "Task Singular Vectors:
Reducing Task Interference in Model Merging", CVPR 2025, arXiv:2412.00081
(code: github.com/AntoAndGar/task_singular_vectors, ``compute_and_sum_svd_mem_reduction``).
Variant: per task ``τ_t = U_t S_t V_t^T``; keep the top ``k_t = ⌊fraction · min(d_out, d_in)⌋``
components (fraction = 1/T by default, as the authors); stack ``U = [U_1,k … U_T,k]``,
``S = [S_1,k … S_T,k]``, ``V^T = [V_1,k^T; …; V_T,k^T]``; orthogonalize both stacks with their polar
factors (Procrustes: ``U ← P_U = X Y^T`` for ``U = X Σ Y^T``, same for V); ``Δ = α P_U diag(S) P_V^T``.
LoRA adaptation: k_t is also capped at the numerical rank of τ_t (≤ r_t) — components beyond it have
zero singular value and arbitrary vectors, which would otherwise perturb the orthogonalization.
Per-task SVDs come from the factors (exact).  Output: exact factors of rank Σ k_t.
"""

from __future__ import annotations

import torch
from pydantic import Field

from osrm_core.merge.lowrank import REL_TOL, balanced_factors, factored_svd, polar
from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """TSV-M parameters."""

    alpha: float = Field(1.0, description="scaling α of the merged update (the authors use 1.0)")
    fraction: float | None = Field(
        None, gt=0, le=1, description="fraction of min(d_out, d_in) singular components kept per task; default 1/T"
    )
    rel_tol: float = Field(
        REL_TOL, gt=0, description="singular values below rel_tol·σ_max count as zero (caps k_t at the rank)"
    )


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """Factors ``B = α P_U √S`` (d_out × K), ``A = √S P_V^T`` (K × d_in), K = Σ_t k_t."""
    T = updates.num_tasks
    frac = params.fraction if params.fraction is not None else 1.0 / T
    k_max = max(1, int(frac * min(updates.shape)))
    Us, Ss, Vhs = [], [], []
    for t in range(T):  # τ_t = U_t S_t V_t^T, top-k_t components
        U, S, Vh = factored_svd(updates.B[t].double() * float(updates.scale[t]), updates.A[t].double(), params.rel_tol)
        Us.append(U[:, :k_max]), Ss.append(S[:k_max]), Vhs.append(Vh[:k_max])
    S = torch.cat(Ss)
    if S.numel() == 0:  # every τ_t is zero
        d_out, d_in = updates.shape
        like = updates.A[0].float()
        empty = (like.new_zeros(0, d_in), like.new_zeros(d_out, 0))
        return MergeResult(factors=empty, info={"rank": 0, "kept_per_task": [0] * T})
    P_U = polar(torch.cat(Us, dim=1))  # d_out × K, orthonormal columns
    P_Vh = polar(torch.cat(Vhs, dim=0))  # K × d_in, orthonormal rows
    A, B = balanced_factors(P_U, S, P_Vh)
    return MergeResult(
        factors=(A.float(), (B * params.alpha).float()),
        info={"rank": int(S.numel()), "kept_per_task": [int(s.numel()) for s in Ss]},
    )


METHOD = MergeMethod(
    name="tsv_m",
    params=Params,
    fn=merge,
    paper="Gargiulo et al. 2025, Task Singular Vectors: Reducing Task Interference in Model Merging, arXiv:2412.00081",
    low_rank=True,
    scale="alpha",  # α multiplies the merged factors as λ does elsewhere
)
