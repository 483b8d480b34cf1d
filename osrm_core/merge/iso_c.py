"""Iso-C: isotropic merging in the common subspace (flatten the spectrum of the task-arithmetic sum).

Paper: Marczak, Magistri, Cygert, Twardowski, Bagdanov, van de Weijer, "No Task Left Behind:
Isotropic Model Merging with Common and Task-Specific Subspaces", ICML 2025, arXiv:2502.04959
(code: github.com/danielm1405/iso-merging, ``iso_c``).
Variant: ``Σ_t τ_t = U S V^T``; replace every singular value by their mean ``σ̄``;
``Δ = α σ̄ U V^T``.  ``spectrum: nonzero`` (default) averages over the numerical rank only (≤ Σ r_t):
for LoRA updates the sum is low rank, and averaging over all min(d_out, d_in) values, as the authors
do for dense task vectors (``spectrum: full``), would shrink σ̄ by that ratio and switch on arbitrary
null-space directions.  Not the identity on a single adapter (the spectrum is flattened) unless τ has
rank 1.  α must be tuned on validation data (the paper's grid); default 1.0.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from osrm_core.merge.lowrank import REL_TOL, balanced_factors, factored_svd
from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """Iso-C parameters."""

    alpha: float = Field(1.0, description="scaling α of the isotropic update (tune on validation data)")
    spectrum: Literal["nonzero", "full"] = Field(
        "nonzero", description="average the nonzero singular values, or all min(d_out, d_in) of them (authors, dense)"
    )
    rel_tol: float = Field(
        REL_TOL, gt=0, description="singular values below rel_tol·σ_max count as zero (spectrum: nonzero)"
    )


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """Factors ``B = α √σ̄ U`` (d_out × k), ``A = √σ̄ V^T`` (k × d_in) with B @ A = α σ̄ U V^T."""
    if params.spectrum == "full":  # dense SVD of the sum, mean over all min(d_out, d_in) values
        total = updates.stacked_deltas().sum(dim=0).double()
        U, S, Vh = torch.linalg.svd(total, full_matrices=False)
    else:  # thin SVD of the task-arithmetic sum from the concatenated factors
        A_cat, B_cat = updates.concat_factors([1.0] * updates.num_tasks)
        U, S, Vh = factored_svd(B_cat, A_cat, params.rel_tol)
    mean = S.mean() if S.numel() else S.new_zeros(())
    A, B = balanced_factors(U, mean.expand(S.numel()), Vh)
    return MergeResult(
        factors=(A.float(), (B * params.alpha).float()),
        info={"rank": int(S.numel()), "mean_singular_value": float(mean)},
    )


METHOD = MergeMethod(
    name="iso_c",
    params=Params,
    fn=merge,
    paper="Marczak et al. 2025, No Task Left Behind: Isotropic Model Merging (Iso-C), arXiv:2502.04959",
    low_rank=True,
    scale="alpha",  # α multiplies the merged factors as λ does elsewhere
)
