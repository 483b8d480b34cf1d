"""DARE + task arithmetic preset: ``Δ = λ Σ_t w_t drop(τ_t)`` (``sparsify: dare``, ``consensus: none``
of the family merge in ``generalized.py``).

Paper: Yu, Yu, Yu, Huang, Li, "Language Models are Super Mario: Absorbing Abilities from Homologous
Models as a Free Lunch" (DARE: Drop And REscale), ICML 2024, arXiv:2311.03099.
Variant: ``peft.utils.merge_utils.dare_linear`` (drop rate p = 1 − density, rescale by 1/(1 − p)),
followed by task arithmetic with λ (default 0.3 as TA; mergekit's ``dare_linear`` has no λ default
and does not normalise).  Randomness comes only from the ``torch.Generator`` passed in, one Bernoulli
draw per entry, tasks in order; so a merge is reproducible from its seed, and a generator seeded
like ``torch.manual_seed`` reproduces PEFT exactly.  ``rescale: false`` is plain random pruning.
"""

from __future__ import annotations

from pydantic import Field

from osrm_core.merge.generalized import DropDensity, Lambda, Weights, preset
from osrm_core.merge.types import MethodParams


class Params(MethodParams):
    """DARE-linear parameters."""

    density: DropDensity = 0.5
    lambda_: Lambda = 0.3
    weights: Weights = None
    rescale: bool = Field(True, description="rescale kept entries by 1/density (DARE); false = plain random pruning")


METHOD = preset("dare_linear", Params, "dare", "none", "Yu et al. 2024, DARE (Language Models are Super Mario), arXiv:2311.03099")
