"""DARE + task arithmetic: ``Δ = λ Σ_t w_t drop(τ_t)``, ``drop`` = Bernoulli(density) mask / density.

Paper: Yu, Yu, Yu, Huang, Li, "Language Models are Super Mario: Absorbing Abilities from Homologous
Models as a Free Lunch" (DARE: Drop And REscale), ICML 2024, arXiv:2311.03099.
Variant: ``peft.utils.merge_utils.dare_linear`` (drop rate p = 1 − density, rescale by 1/(1 − p)),
followed by task arithmetic with λ (default 0.3 as TA).  Randomness comes only from the
``torch.Generator`` passed in, one Bernoulli draw per entry, tasks in order; so a merge is
reproducible from its seed, and a generator seeded like ``torch.manual_seed`` reproduces PEFT exactly.
"""

from __future__ import annotations

import torch
from pydantic import Field

from osrm_core.merge.sparsify import random_drop_
from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates

DEFAULT_SEED = 0


def resolve_generator(generator: torch.Generator | None, info: dict) -> torch.Generator:
    """The caller's generator, or a fresh one seeded with DEFAULT_SEED (recorded in ``info``)."""
    if generator is not None:
        return generator
    info["seed"] = DEFAULT_SEED
    return torch.Generator().manual_seed(DEFAULT_SEED)


class Params(MethodParams):
    """DARE-linear parameters."""

    density: float = Field(
        0.5, gt=0, le=1, description="keep probability 1 − p of each entry (DARE drop rate p = 1 − density)"
    )
    lambda_: float = Field(0.3, alias="lambda", description="scaling λ of the sum (as task arithmetic)")
    weights: list[float] | None = Field(None, description="per-task weights w_t (default 1 each)")
    rescale: bool = Field(True, description="rescale kept entries by 1/density (DARE); false = plain random pruning")


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """Dense ``d_out × d_in``; draws task 0's mask first, then task 1's, … from ``generator``."""
    info: dict = {}
    gen = resolve_generator(generator, info)
    w = updates.task_weights(params.weights)
    delta = torch.zeros(updates.shape, dtype=torch.float32, device=updates.A[0].device)
    for t in range(updates.num_tasks):
        delta.add_(random_drop_(updates.delta(t), params.density, gen, params.rescale), alpha=params.lambda_ * w[t])
    return MergeResult(delta=delta, info=info)


METHOD = MergeMethod(
    name="dare_linear",
    params=Params,
    fn=merge,
    paper="Yu et al. 2024, DARE (Language Models are Super Mario), arXiv:2311.03099",
)
