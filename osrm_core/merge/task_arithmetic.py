"""Task arithmetic: ``Δ = λ Σ_t w_t τ_t``.

Paper: Ilharco, Ribeiro, Wortsman, Gururangan, Schmidt, Hajishirzi, Farhadi, "Editing Models with
Task Arithmetic", ICLR 2023, arXiv:2212.04089.
Variant: addition of task vectors with one scaling coefficient λ (paper grid 0.1–1.0; default 0.3)
and optional per-task weights w_t (PEFT ``task_arithmetic`` weights).  Exact in LoRA factor space:
concatenating the factors gives a rank-Σ r_t adapter whose product is the merged update.
"""

from __future__ import annotations

import torch
from pydantic import Field

from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """Task-arithmetic parameters."""

    lambda_: float = Field(0.3, alias="lambda", description="scaling coefficient λ applied to the sum of task vectors")
    weights: list[float] | None = Field(
        None, description="per-task weights w_t (default 1 each); length = number of tasks"
    )


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """``A = [A_1; …; A_T]`` (R × d_in), ``B = [λ w_1 s_1 B_1, …]`` (d_out × R): B @ A = λ Σ w_t τ_t."""
    w = updates.task_weights(params.weights)
    A, B = updates.concat_factors([params.lambda_ * wt for wt in w])
    return MergeResult(factors=(A, B), info={"rank": A.shape[0]})


METHOD = MergeMethod(
    name="task_arithmetic",
    params=Params,
    fn=merge,
    paper="Ilharco et al. 2023, Editing Models with Task Arithmetic, arXiv:2212.04089",
    low_rank=True,
    scale="lambda",
    grid={"lambda": (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)},  # to 2: λ = 1 is often chosen (docs/merging.md)
)
