"""DARE + TIES: random drop-and-rescale instead of the magnitude trim, then TIES sign election and
disjoint mean.

Papers: Yu et al., "Language Models are Super Mario" (DARE), ICML 2024, arXiv:2311.03099;
Yadav et al., "TIES-Merging", NeurIPS 2023, arXiv:2306.01708.
Variant: ``peft.utils.merge_utils.dare_ties`` by default (elect on unweighted dropped tensors, divide
by agreeing count), ``variant: mergekit`` as mergekit's ``dare_ties`` (elect weighted, divide by
agreeing weight); λ defaults to 1 as TIES.  The drop masks come from the ``torch.Generator`` passed
in, exactly as in ``dare_linear`` (same seed ⇒ same masks in both methods).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from osrm_core.merge.dare_linear import resolve_generator
from osrm_core.merge.sparsify import random_drop_, ties_combine
from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """DARE-TIES parameters."""

    density: float = Field(
        0.5, gt=0, le=1, description="keep probability 1 − p of each entry (DARE drop rate p = 1 − density)"
    )
    lambda_: float = Field(1.0, alias="lambda", description="scaling λ of the disjoint mean (as TIES)")
    election: Literal["total", "frequency"] = Field(
        "total", description="sign election: sign of Σ τ_t, or of Σ sign(τ_t)"
    )
    variant: Literal["peft", "mergekit"] = Field(
        "peft", description="peft: elect unweighted, divide by count; mergekit: elect weighted, divide by weight"
    )
    weights: list[float] | None = Field(None, description="per-task weights w_t (default 1 each)")


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """Dense ``Δ = λ · disjoint_mean_t(w_t · drop(τ_t))`` (d_out × d_in)."""
    info: dict = {}
    gen = resolve_generator(generator, info)
    w = updates.task_weights(params.weights)
    stack = updates.stacked_deltas()  # T × d_out × d_in
    for t in range(updates.num_tasks):
        random_drop_(stack[t], params.density, gen, rescale=True)
    delta = ties_combine(stack, w, params.election, params.variant).mul_(params.lambda_)
    return MergeResult(delta=delta, info=info)


METHOD = MergeMethod(
    name="dare_ties",
    params=Params,
    fn=merge,
    paper="Yu et al. 2024 (DARE), arXiv:2311.03099 + Yadav et al. 2023 (TIES), arXiv:2306.01708",
)
