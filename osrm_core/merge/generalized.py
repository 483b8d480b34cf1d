"""Generalized task arithmetic: TIES, DARE, DARE-TIES and magnitude pruning as ONE configurable merge.

As mergekit's ``generalized_task_arithmetic`` (and PEFT's ``merge_utils``), every member of the family
is ``Δ = λ · combine_t(w_t, sparsify(τ_t))`` on one module (docs/merging.md, "The TIES/DARE family"):

sparsify  ``magnitude``: keep the top-``density`` |entries| of each τ_t (TIES trim, per tensor);
          ``dare``: keep each entry with probability ``density``, rescale survivors by 1/density
          (``rescale: false`` = plain random pruning); ``none``: τ_t unchanged.
consensus ``sign``: elect a sign per entry (``election: total`` = sign Σ τ_t, ``frequency`` = sign
          Σ sign τ_t) and take the disjoint mean of the agreeing entries (``variant: peft``: elect
          unweighted, divide by the agreeing count; ``mergekit``: elect on w_t τ_t, divide by the
          agreeing weight); ``none``: the weighted sum Σ_t w_t sparsify(τ_t).

The registry keys ``ties``, ``dare_ties``, ``dare_linear`` and ``magnitude_prune`` are presets
(``preset``): each fixes (sparsify, consensus) and keeps its own defaults.  Randomness (DARE) comes
only from the ``torch.Generator`` passed in: one Bernoulli draw per entry, tasks in order.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from osrm_core.merge.sparsify import random_drop_
from osrm_core.merge.ties_blocks import merge_blocks
from osrm_core.merge.types import MergeMethod, MergeResult, ModuleUpdates

DEFAULT_SEED = 0
Sparsify = Literal["magnitude", "dare", "none"]
Consensus = Literal["sign", "none"]

# Field types shared by the presets' Params (one description each).
TrimDensity = Annotated[float, Field(gt=0, le=1, description="fraction of entries of each τ_t kept by magnitude (per module)")]
DropDensity = Annotated[float, Field(gt=0, le=1, description="keep probability 1 − p of each entry (DARE drop rate p = 1 − density)")]
Election = Annotated[Literal["total", "frequency"], Field(description="sign election: sign of Σ τ_t, or of Σ sign(τ_t)")]
Variant = Annotated[
    Literal["peft", "mergekit"],
    Field(description="peft: elect unweighted, divide by count; mergekit: elect weighted, divide by weight"),
]
Lambda = Annotated[
    float, Field(alias="lambda", description="scaling λ of the merged update (of the disjoint mean, or of the sum without consensus)")
]
Weights = Annotated[list[float] | None, Field(description="per-task weights w_t (default 1 each)")]


class Family(BaseModel):
    """One full configuration of the family (what a preset's Params resolve to)."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True, frozen=True)

    sparsify: Sparsify
    consensus: Consensus
    density: float = Field(1.0, gt=0, le=1)
    rescale: bool = True
    election: Literal["total", "frequency"] = "total"
    variant: Literal["peft", "mergekit"] = "peft"
    lambda_: float = Field(1.0, alias="lambda")
    weights: list[float] | None = None


def resolve_generator(generator: torch.Generator | None, info: dict) -> torch.Generator:
    """The caller's generator, or a fresh one seeded with DEFAULT_SEED (recorded in ``info``)."""
    if generator is not None:
        return generator
    info["seed"] = DEFAULT_SEED
    return torch.Generator().manual_seed(DEFAULT_SEED)


def merge(updates: ModuleUpdates, cfg: Family, generator: torch.Generator | None = None) -> MergeResult:
    """Dense ``Δ`` (d_out × d_in, float32).  ``info``: ``seed`` when DARE drew from the default seed;
    for the magnitude trim the result's ``nonzero_fraction`` and, with sign consensus, the trimmed
    stack's ``kept_fraction``.  Computed in cache-sized row blocks (``ties_blocks``) except DARE
    without consensus, which needs no T-stack: Δ = λ Σ_t w_t drop(τ_t), one τ_t at a time."""
    info: dict = {}
    gen = resolve_generator(generator, info) if cfg.sparsify == "dare" else None
    w = updates.task_weights(cfg.weights)
    if cfg.sparsify == "dare" and cfg.consensus == "none":
        delta = torch.zeros(updates.shape, dtype=torch.float32, device=updates.A[0].device)
        for t in range(updates.num_tasks):
            delta.add_(random_drop_(updates.delta(t), cfg.density, gen, cfg.rescale), alpha=cfg.lambda_ * w[t])
        return MergeResult(delta=delta, info=info)
    delta, block_info = merge_blocks(updates, cfg, w, gen)
    return MergeResult(delta=delta, info={**info, **block_info})


def preset(name: str, params: type[BaseModel], sparsify: Sparsify, consensus: Consensus, paper: str,
           grid: dict[str, tuple[float, ...]] | None = None) -> MergeMethod:
    """Registry entry whose Params (``density``, ``lambda_``, ``weights`` and, where present,
    ``election``/``variant``/``rescale``) fill a ``Family`` with this (sparsify, consensus); λ is its scale.
    With sign consensus λ is applied last (``ties_blocks.merge_blocks`` ends with ``.mul_(λ)``, DARE's masks
    do not depend on λ), so Δ(λ) = λ · Δ(1) bit for bit; without it λ weighs each τ_t inside the sum."""

    def fn(updates: ModuleUpdates, p: BaseModel, generator: torch.Generator | None = None) -> MergeResult:
        return merge(updates, Family(sparsify=sparsify, consensus=consensus, **p.model_dump()), generator)

    fn.__doc__ = f"{name}: the family merge with sparsify={sparsify!r}, consensus={consensus!r}."
    return MergeMethod(name=name, params=params, fn=fn, paper=paper, scale="lambda", scaled_last=consensus == "sign",
                       grid=grid or {})
