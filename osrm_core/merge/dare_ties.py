"""DARE-TIES preset: random drop with rescale, then TIES sign election and disjoint mean
(``sparsify: dare``, ``consensus: sign`` of the family merge in ``generalized.py``).

Papers: Yu, Yu, Yu, Huang, Li, "Language Models are Super Mario" (DARE), ICML 2024, arXiv:2311.03099;
Yadav et al., TIES-Merging, NeurIPS 2023, arXiv:2306.01708.
Variant: ``peft.utils.merge_utils.dare_ties`` (drop with keep probability ``density``, rescale by
1/density, elect on the unweighted dropped tensors, divide by the agreeing count); ``variant:
mergekit`` as mergekit's ``dare_ties`` (elect weighted, divide by agreeing weight); λ defaults to 1
as TIES.  The drop masks come from the ``torch.Generator`` passed in, exactly as in ``dare_linear``
(same seed ⇒ same masks in both methods).  Differences from the DARE authors' code: they drop from
the global torch RNG per parameter tensor of the full model (no per-merge seed); PEFT draws from the
global RNG in the same order as ours, so ``torch.manual_seed(s)`` there equals our seed s.
"""

from __future__ import annotations

from osrm_core.merge.generalized import DropDensity, Election, Lambda, Variant, Weights, preset
from osrm_core.merge.types import MethodParams


class Params(MethodParams):
    """DARE-TIES parameters."""

    density: DropDensity = 0.5
    lambda_: Lambda = 1.0
    election: Election = "total"
    variant: Variant = "peft"
    weights: Weights = None


METHOD = preset(
    "dare_ties",
    Params,
    "dare",
    "sign",
    "Yu et al. 2024 (DARE), arXiv:2311.03099 + Yadav et al. 2023 (TIES), arXiv:2306.01708",
)
