"""TIES-Merging: trim, elect sign, disjoint merge.

Paper: Yadav, Tam, Choshen, Raffel, Bansal, "TIES-Merging: Resolving Interference When Merging
Models", NeurIPS 2023, arXiv:2306.01708.
Variant (default ``variant: peft``, = ``peft.utils.merge_utils.ties``): trim each τ_t per tensor (per
module) to its top-``density`` magnitudes; elect a sign per entry on the UNWEIGHTED trimmed tensors
(``election: total`` = sign of the sum, ``frequency`` = sign of the sum of signs); disjoint mean of the
agreeing entries weighted by w_t and divided by the agreeing COUNT; times λ.
``variant: mergekit`` elects on the weighted tensors w_t τ_t and divides by the agreeing WEIGHT
Σ_t w_t [agree] (mergekit ``ties`` with ``normalize: true``).  The two agree when all w_t are equal to 1.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from osrm_core.merge.sparsify import magnitude_trim_, ties_combine
from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """TIES parameters (density 0.2 and λ = 1 as in the paper's defaults)."""

    density: float = Field(
        0.2, gt=0, le=1, description="fraction of entries of each τ_t kept by magnitude (per module)"
    )
    lambda_: float = Field(1.0, alias="lambda", description="scaling λ of the disjoint mean")
    election: Literal["total", "frequency"] = Field(
        "total", description="sign election: sign of Σ τ_t, or of Σ sign(τ_t)"
    )
    variant: Literal["peft", "mergekit"] = Field(
        "peft", description="peft: elect unweighted, divide by count; mergekit: elect weighted, divide by weight"
    )
    weights: list[float] | None = Field(None, description="per-task weights w_t (default 1 each)")


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """Dense: ``Δ = λ · disjoint_mean_t(w_t · trim(τ_t))`` (d_out × d_in)."""
    w = updates.task_weights(params.weights)
    stack = updates.stacked_deltas()  # T × d_out × d_in
    for t in range(updates.num_tasks):
        magnitude_trim_(stack[t], params.density)  # trim: top-density magnitudes of τ_t
    kept = int(torch.count_nonzero(stack)) / stack.numel()
    delta = ties_combine(stack, w, params.election, params.variant).mul_(params.lambda_)
    nonzero = int(torch.count_nonzero(delta)) / delta.numel()
    return MergeResult(delta=delta, info={"kept_fraction": kept, "nonzero_fraction": nonzero})


METHOD = MergeMethod(
    name="ties",
    params=Params,
    fn=merge,
    paper="Yadav et al. 2023, TIES-Merging, arXiv:2306.01708",
)
