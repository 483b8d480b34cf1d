"""Weight averaging (model soup): ``Δ = (1/T) Σ_t τ_t``.

Paper: Wortsman, Ilharco, Gadre, Roelofs, Gontijo-Lopes, Morcos, Namkoong, Farhadi, Carmon, Kornblith,
Schmidt, "Model soups: averaging weights of multiple fine-tuned models improves accuracy without
increasing inference time", ICML 2022, arXiv:2203.05482 (uniform soup).
Variant: uniform average of the task updates, exact in LoRA factor space (concatenated factors, rank Σ r_t).
"""

from __future__ import annotations

import torch

from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """Weight averaging has no parameters."""


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """``A = [A_1; …; A_T]`` (R × d_in), ``B = [s_1 B_1/T, …, s_T B_T/T]`` (d_out × R): B @ A = mean τ_t."""
    T = updates.num_tasks
    A, B = updates.concat_factors([1.0 / T] * T)
    return MergeResult(factors=(A, B), info={"rank": A.shape[0]})


METHOD = MergeMethod(
    name="weight_average",
    params=Params,
    fn=merge,
    paper="Wortsman et al. 2022, Model soups, arXiv:2203.05482",
    low_rank=True,
)
