"""Magnitude pruning + task arithmetic preset: ``Δ = λ Σ_t w_t trim(τ_t)`` (``sparsify: magnitude``,
``consensus: none`` of the family merge in ``generalized.py``).

Reference semantics: ``peft.utils.merge_utils.magnitude_prune`` (PEFT's ``add_weighted_adapter``
combination ``magnitude_prune``), i.e. the TIES trim step (Yadav et al. 2023, arXiv:2306.01708)
without sign election, followed by task arithmetic (Ilharco et al. 2023, arXiv:2212.04089).
Variant: per-tensor (per-module) top-``density`` magnitude trim; λ defaults to TA's 0.3 because
the result is a sum, not a mean (PEFT has no λ; mergekit's ``magnitude``-sparsified task arithmetic
is the same merge with its own λ).
"""

from __future__ import annotations

from osrm_core.merge.generalized import Lambda, TrimDensity, Weights, preset
from osrm_core.merge.types import MethodParams


class Params(MethodParams):
    """Magnitude-prune parameters."""

    density: TrimDensity = 0.2
    lambda_: Lambda = 0.3
    weights: Weights = None


METHOD = preset(
    "magnitude_prune", Params, "magnitude", "none", "Yadav et al. 2023 (TIES trim step), arXiv:2306.01708; PEFT magnitude_prune"
)
