"""Magnitude pruning + task arithmetic: ``Δ = λ Σ_t w_t trim(τ_t)``.

Reference semantics: ``peft.utils.merge_utils.magnitude_prune`` (PEFT's ``add_weighted_adapter``
combination ``magnitude_prune``), i.e. the TIES trim step (Yadav et al. 2023, arXiv:2306.01708)
without sign election, followed by task arithmetic (Ilharco et al. 2023, arXiv:2212.04089).
Variant: per-tensor (per-module) top-``density`` magnitude trim; λ defaults to TA's 0.3 because
the result is a sum, not a mean.
"""

from __future__ import annotations

import torch
from pydantic import Field

from osrm_core.merge.sparsify import magnitude_trim_
from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """Magnitude-prune parameters."""

    density: float = Field(
        0.2, gt=0, le=1, description="fraction of entries of each τ_t kept by magnitude (per module)"
    )
    lambda_: float = Field(0.3, alias="lambda", description="scaling λ of the sum (as task arithmetic)")
    weights: list[float] | None = Field(None, description="per-task weights w_t (default 1 each)")


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """Dense ``d_out × d_in``; accumulates one trimmed τ_t at a time (no T-stack)."""
    w = updates.task_weights(params.weights)
    delta = torch.zeros(updates.shape, dtype=torch.float32, device=updates.A[0].device)
    for t in range(updates.num_tasks):
        delta.add_(magnitude_trim_(updates.delta(t), params.density), alpha=params.lambda_ * w[t])
    return MergeResult(delta=delta, info={"nonzero_fraction": int(torch.count_nonzero(delta)) / delta.numel()})


METHOD = MergeMethod(
    name="magnitude_prune",
    params=Params,
    fn=merge,
    paper="Yadav et al. 2023 (TIES trim step), arXiv:2306.01708; PEFT magnitude_prune",
)
