"""TIES-Merging preset: magnitude trim, sign election, disjoint mean (``sparsify: magnitude``,
``consensus: sign`` of the family merge in ``generalized.py``).

Paper: Yadav, Tam, Choshen, Raffel, Bansal, "TIES-Merging: Resolving Interference When Merging
Models", NeurIPS 2023, arXiv:2306.01708 (code: github.com/prateeky2806/ties-merging).
Variant (default ``variant: peft``, = ``peft.utils.merge_utils.ties``): trim each τ_t per tensor (per
module) to its top-``density`` magnitudes; elect a sign per entry on the UNWEIGHTED trimmed tensors
(``election: total`` = sign of the sum, ``frequency`` = sign of the sum of signs); disjoint mean of the
agreeing entries weighted by w_t and divided by the agreeing COUNT; times λ.
``variant: mergekit`` elects on the weighted tensors w_t τ_t and divides by the agreeing WEIGHT
Σ_t w_t [agree] (mergekit ``ties`` with ``normalize: true``).  The two agree when all w_t are equal to 1.
Differences from the authors' code: their trim is one top-k over each whole task vector (all layers
at once), ours is per module, as PEFT and mergekit; ties at the threshold keep the lowest indices.
Defaults density 0.2 and λ = 1 as the paper's.
"""

from __future__ import annotations

from osrm_core.merge.generalized import Election, Lambda, TrimDensity, Variant, Weights, preset
from osrm_core.merge.types import MethodParams


class Params(MethodParams):
    """TIES parameters (density 0.2 and λ = 1 as in the paper's defaults)."""

    density: TrimDensity = 0.2
    lambda_: Lambda = 1.0
    election: Election = "total"
    variant: Variant = "peft"
    weights: Weights = None


METHOD = preset("ties", Params, "magnitude", "sign", "Yadav et al. 2023, TIES-Merging, arXiv:2306.01708",
                grid={"lambda": (0.5, 1.0, 1.5, 2.0), "density": (0.1, 0.2, 0.5)})
