"""KnOTS: align the task updates in a shared SVD basis, then merge their coefficients.

Paper: Stoica, Ramesh, Ecsedi, Choshen, Hoffman, "Model merging with SVD to tie the KnOTS",
ICLR 2025, arXiv:2410.19735 (code: github.com/gstoica27/KnOTS).
Variant (the authors' ``SVDMerger`` with ``concat_across_output=True``, ``s_on_V=True``): SVD of the
column-concatenation ``[τ_1 … τ_T] = U S [V_1^T … V_T^T]`` (d_out × T·d_in, singular values below a
relative tolerance dropped), so ``τ_t = U (S V_t^T)`` with a shared basis U (d_out × k) and per-task
aligned coefficients ``C_t = S V_t^T`` (k × d_in).  The C_t are merged with TIES (``merge: ties``,
default: top-``density`` trim per task, sign election on the unweighted trimmed C_t, disjoint mean by
agreeing count, × λ — the authors' ``ties_masking`` + ``masked_merge('mean')``) or task arithmetic
(``merge: ta``: top-``density`` trim, ``λ Σ_t w_t C_t``); the merged update is ``U C``.
Differences from the authors: the trim is per module (theirs is one top-k over all layers of a task)
and the SVD is computed from the LoRA factors (exact, no dense concatenation).  Defaults density 0.2,
λ = 0.6 follow their ViT-B/32 TIES config (they use λ 0.5, no trim, for Llama-3-8B: tune per model).
The output is exact factors (A = λ·merged C, B = U) of rank k ≤ Σ r_t.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from osrm_core.merge.lowrank import REL_TOL, factored_svd
from osrm_core.merge.sparsify import magnitude_trim_, ties_combine
from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """KnOTS parameters."""

    merge: Literal["ties", "ta"] = Field("ties", description="how the aligned coefficients are merged")
    density: float = Field(
        0.2, gt=0, le=1, description="fraction of each task's aligned coefficients kept by magnitude"
    )
    lambda_: float = Field(0.6, alias="lambda", description="scaling λ of the merged coefficients")
    election: Literal["total", "frequency"] = Field("total", description="TIES sign election on the coefficients")
    weights: list[float] | None = Field(None, description="per-task weights w_t (default 1 each)")
    rel_tol: float = Field(
        REL_TOL, gt=0, description="singular values below rel_tol·σ_max are dropped from the shared basis"
    )


def aligned_basis(updates: ModuleUpdates, rel_tol: float) -> tuple[Tensor, Tensor]:
    """SVD of ``[τ_1 … τ_T]`` from factors: ``B_cat = [s_t B_t]`` (d_out × R) times the block-diagonal
    ``diag(A_1, …, A_T)`` (R × T·d_in).  Returns U (d_out × k) and the stacked coefficients
    ``C = S V^T`` reshaped to T × k × d_in, all float64."""
    d_in, T = updates.shape[1], updates.num_tasks
    B_cat = torch.cat([b.double() * float(s) for b, s in zip(updates.B, updates.scale)], dim=1)
    blocks = torch.block_diag(*[a.double() for a in updates.A])  # R × T·d_in
    U, S, Vh = factored_svd(B_cat, blocks, rel_tol)
    C = (S[:, None] * Vh).reshape(-1, T, d_in).transpose(0, 1).contiguous()  # C_t = S V_t^T
    return U, C


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """Factors ``A = λ · merge_t(C_t)`` (k × d_in), ``B = U`` (d_out × k); ``B @ A`` is the update."""
    w = updates.task_weights(params.weights)
    U, C = aligned_basis(updates, params.rel_tol)
    C = C.float()
    for t in range(updates.num_tasks):
        magnitude_trim_(C[t], params.density)  # trim C_t per task
    if params.merge == "ties":
        merged = ties_combine(C, w, params.election, "peft")
    else:
        merged = torch.einsum("t,tkd->kd", torch.tensor(w, dtype=C.dtype, device=C.device), C)
    A = merged.mul_(params.lambda_)
    return MergeResult(factors=(A, U.float()), info={"rank": U.shape[1]})


METHOD = MergeMethod(
    name="knots",
    params=Params,
    fn=merge,
    paper="Stoica et al. 2025, Model merging with SVD to tie the KnOTS, arXiv:2410.19735",
    low_rank=True,
    scale="lambda",
)
