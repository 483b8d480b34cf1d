"""EMR-Merging: Elect, Mask & Rescale — one unified update plus light per-task modulators.

Paper: Huang, Ye, Liang, Tang, Chen, Zhang, "EMR-Merging: Tuning-Free High-Performance Model
Merging", NeurIPS 2024, arXiv:2405.17461.
Variant (as the authors' ``emr_merge``): elected sign σ = +1 where Σ_t τ_t > 0, else −1;
``τ_uni = σ ⊙ max_t |τ_t ⊙ [τ_t σ > 0]|`` (largest agreeing magnitude); mask ``M_t = [τ_t ⊙ σ > 0]``;
rescaler ``λ_t = Σ|τ_t| / Σ|M_t ⊙ τ_uni|``; task t is served as ``W0 + λ_t M_t ⊙ τ_uni`` (needs the task
id at inference).  Difference from the authors: λ_t is computed per module (their code sums the
per-parameter means over the whole model into one λ_t per task); ``info`` carries both sums so a
caller can form the global rescaler.  ``delta`` is τ_uni, for reference only.
"""

from __future__ import annotations

import torch

from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """EMR-Merging is tuning-free: no parameters."""


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """per_task[t] = λ_t M_t ⊙ τ_uni (T tensors d_out × d_in, written over the τ stack); delta = τ_uni."""
    stack = updates.stacked_deltas()  # T × d_out × d_in
    sigma = torch.where(stack.sum(dim=0) > 0, 1.0, -1.0)  # elect: σ = sign of Σ τ_t (0 → −1)
    uni = torch.zeros_like(sigma)
    for t in range(updates.num_tasks):  # τ_uni magnitude = max agreeing |τ_t|
        torch.maximum(uni, (stack[t] * sigma).clamp_min_(0), out=uni)
    uni.mul_(sigma)
    lambdas, abs_sums, masked_sums = [], [], []
    for t in range(updates.num_tasks):
        abs_sum = float(stack[t].abs().sum())  # Σ|τ_t|
        mask = (stack[t] * sigma) > 0  # M_t
        stack[t] = uni * mask  # M_t ⊙ τ_uni
        masked = float(stack[t].abs().sum())
        lam = abs_sum / masked if masked > 0 else 1.0  # λ_t; an empty mask serves zero anyway
        stack[t].mul_(lam)
        lambdas.append(lam), abs_sums.append(abs_sum), masked_sums.append(masked)
    info = {"rescalers": lambdas, "abs_sum": abs_sums, "masked_abs_sum": masked_sums, "numel": uni.numel()}
    return MergeResult(delta=uni, per_task=list(stack.unbind(0)), info=info)


METHOD = MergeMethod(
    name="emr",
    params=Params,
    fn=merge,
    paper="Huang et al. 2024, EMR-Merging: Tuning-Free High-Performance Model Merging, arXiv:2405.17461",
    per_task=True,
)
