"""Where an arm that starts from another arm's adapters begins (docs/osrm.md, "Convert"): its `init` names a
start in osrm_core.lora.INITS, which maps the source update ΔW = s_in B A of each module to the factors (A', B')
of the derived arm at its own scale s_out, so that s_out B' A' is the converted update.

- refit (the paper's post mode): the paper's projection into the task's subspace, A' = A_t, B' = s_in B (A A_tᵀ) / s_out
  (ΔW' = ΔW A_tᵀ A_t; osrm_core/convert.py), then fine-tuned for `refit_epochs`.
- posthoc: the projection that keeps `keep_share` of the task's own output shift (osrm_core/keep.py), no training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from osrm_core.convert import project_lora
from osrm_core.errors import OsrmError
from osrm_core.keep import keep_lora, report

Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Source:
    """One task's source adapter and what a start may read. factors: {module: (A r_m x d_in, B d_out x r_m)} at
    scale_in (per-module scales folded into B, stages.io.adapters.Adapter); scale_out: the derived arm's lora scale;
    subspace: {module: A_t (r x d_in)} or None; moments(module) -> (S_t, S_¬t) (d_in x d_in per-token second
    moments of the task's and the other tasks' tokens), read only when called; share, ridge: keep_share and
    osrm.contrast_ridge of the derived arm."""

    factors: Factors
    scale_in: float
    scale_out: float
    subspace: dict[str, torch.Tensor] | None = None
    moments: Callable[[str], tuple[torch.Tensor, torch.Tensor]] | None = None
    share: float = 0.9
    ridge: float = 1e-2


def project_start(src: Source) -> Factors:
    """{module: (A_t, B')}: the update projected into the subspace (docs/osrm.md, "Convert")."""
    missing = sorted(set(src.factors) - set(src.subspace or {}))
    if missing:
        raise OsrmError(f"the subspace has no A for module {missing[0]} — build it with the source arm's lora.blocks")
    return {m: project_lora(a, b, src.scale_in, src.subspace[m], src.scale_out) for m, (a, b) in src.factors.items()}


def posthoc_start(src: Source) -> Factors:
    """{module: (A', B')}: ΔW' = ΔW P_k, the fewest generalised eigen-directions that keep `share` of the own output
    shift (osrm_core.keep.keep_lora), written at scale_out."""
    out = {}
    for m, (a, b) in src.factors.items():
        kept = keep_lora(a, b, src.scale_in, *src.moments(m), share=src.share, ridge=src.ridge)
        out[m] = (kept.a, kept.b * (src.scale_in / src.scale_out))
    return out


def kept(src: Source, factors: Factors) -> dict:
    """What the conversion src.factors (at scale_in) -> factors (at scale_out) keeps of the task (keep.report)."""
    return report(src.moments, {m: (*f, src.scale_in) for m, f in src.factors.items()},
                  {m: (*f, src.scale_out) for m, f in factors.items()})
