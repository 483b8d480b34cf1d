"""Element-wise building blocks shared by the TIES/DARE family, EMR and KnOTS.

Trim (keep the top-density magnitudes of one tensor), random drop (DARE), sign election and the
disjoint mean.  Semantics follow ``peft.utils.merge_utils`` (PEFT ≥ 0.10) unless a ``variant``
says ``mergekit``; every function works on one module's tensors, so trimming is per tensor.

Speed (docs/benchmarks.md, "TIES at Llama-3-8B shapes"): the family merge applies these to row blocks
that stay in cache (``ties_blocks``); the trim keeps entries with one in-place ``hardshrink``; the
election and disjoint mean stream over the tasks with three buffers (optionally the caller's) and
float 1/0 agreement masks (multiplying by them is exact).  Finite inputs are assumed.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

Election = Literal["total", "frequency"]
Variant = Literal["peft", "mergekit"]


SAMPLE = 65536  # entries sampled to bracket a k-th value (kth_largest_count, ties_blocks.bracket)


def bracket_sample(n: int, k: int, sample: int = SAMPLE) -> tuple[Tensor, tuple[int, int]]:
    """(idx (sample,), (i_lo, i_hi)): seeded positions among n entries and the 0-based ascending ranks of
    their values that bracket the k-th largest of all n with high probability (q = 1 − k/n, ± 4 sd + 16)."""
    idx = torch.randint(n, (sample,), generator=torch.Generator().manual_seed(n + k))
    q, margin = 1 - k / n, 4 * (sample * (k / n) * (1 - k / n)) ** 0.5 + 16
    return idx, (max(0, int(q * sample - margin)), min(sample - 1, int(q * sample + margin)))


def kth_largest_count(a: Tensor, k: int, sample: int = SAMPLE) -> tuple[Tensor, int]:
    """``(v, #{a >= v})``: the exact k-th largest value of a flat tensor ``a`` (n,), 1 <= k <= n.

    A seeded random sample brackets the target rank; one exact ``kthvalue`` runs on the (small)
    bracket only, O(n) comparisons instead of a full top-k.  The only full passes are ``a >= lo`` and
    its selection; the bracket and ``#{a > hi}`` come from the selected candidates.  Falls back to ``kthvalue`` on all of ``a`` when the bracket
    misses (never wrong, only slower)."""
    n = a.numel()
    if n > 4 * sample:
        idx, (i_lo, i_hi) = bracket_sample(n, k, sample)
        probe = a[idx].sort().values
        lo, hi = probe[i_lo], probe[i_hi]
        cand = a[a >= lo]  # one pass; the top ≈ k + bracket entries
        band = cand[cand <= hi]
        above = cand.numel() - band.numel()  # #{a > hi}
        if above < k <= above + band.numel():
            v = torch.kthvalue(band, band.numel() - (k - above) + 1).values
            return v, above + int(torch.count_nonzero(band >= v))
    v = torch.kthvalue(a, n - k + 1).values
    return v, int(torch.count_nonzero(a >= v))


def magnitude_trim_(tau: Tensor, density: float) -> Tensor:
    """Zero, in place, all but the ``k = int(density · numel)`` largest-|·| entries of ``tau`` (any
    shape; ``density >= 1`` keeps everything) and return ``tau``.  Same top-k rule as PEFT's
    ``magnitude_based_pruning``; entries tied with the k-th largest magnitude are kept in index order
    until k are kept."""
    flat = tau.view(-1)
    k = int(density * flat.numel())
    if density >= 1:
        return tau
    if k <= 0:
        return tau.zero_()
    mag = flat.abs()
    thr, at_least = kth_largest_count(mag, k)
    extra = at_least - k
    if extra > 0:  # several entries equal the threshold: drop the highest indices among them
        drop = (mag == thr).nonzero()[-extra:, 0]
    # keep |τ| >= thr in one in-place pass: hardshrink zeroes |x| <= λ, λ = the float just below thr.
    # (Dropped entries become +0.0 where a mask product gave ±0.0; no merged result can tell.)
    below = float(torch.nextafter(thr, thr.new_tensor(float("-inf"))))
    torch.hardshrink(flat, below, out=flat)
    if extra > 0:
        flat[drop] = 0
    return tau


def random_drop_(tau: Tensor, density: float, generator: torch.Generator | None, rescale: bool = True) -> Tensor:
    """DARE (Yu et al. 2024), in place: keep each entry with probability ``density`` (= 1 − p),
    ``m ~ Bernoulli(density)``, then rescale the survivors by ``1/density``.  One Bernoulli draw per
    entry from ``generator`` (the same stream as PEFT's ``random_pruning`` under an equal seed)."""
    if density >= 1:
        return tau
    mask = torch.bernoulli(torch.full_like(tau, density), generator=generator)
    return drop_with_mask_(tau, mask, density, rescale)


def drop_with_mask_(tau: Tensor, mask: Tensor, density: float, rescale: bool = True) -> Tensor:
    """DARE's ``τ ⊙ m / density`` in place with a drawn keep mask ``m`` (float 1/0 or bool, tau's
    shape); ``rescale: false`` skips the division.  A bool mask multiplies as 1.0/0.0 (same bits)."""
    tau.mul_(mask)
    if rescale and density > 0:
        tau.div_(density)
    return tau


def elect_sign(stack: Tensor, election: Election, tmp: Tensor | None = None, votes: Tensor | None = None) -> Tensor:
    """Majority sign per entry of a ``T × …`` stack: ``total`` = sign of Σ_t τ_t, ``frequency`` =
    sign of Σ_t sign(τ_t); a tie (0) elects +1 (PEFT and mergekit).  Returns a float ±1 tensor of
    shape … (written into ``votes`` when given); sums run over t in order from 0 (bitwise what
    ``stack.sum(0)`` gives)."""
    votes = torch.zeros_like(stack[0]) if votes is None else votes.zero_()
    tmp = torch.empty_like(votes) if tmp is None and election != "total" else tmp
    for t in range(stack.shape[0]):
        votes.add_(stack[t] if election == "total" else torch.sign(stack[t], out=tmp))
    return votes.ge_(0).mul_(2).sub_(1)  # 1/0 → ±1, exact


def ties_combine(
    stack: Tensor, weights: Sequence[float], election: Election, variant: Variant,
    work: Tensor | None = None, out: Tensor | None = None,
) -> Tensor:
    """Elect + disjoint merge of already sparsified task tensors ``stack`` (T × …), ``w`` = weights.

    peft:     σ = elect(τ);      agree_t = [sign τ_t = σ];  out = Σ_t w_t τ_t agree_t / max(1, Σ_t agree_t)
    mergekit: σ = elect(w ⊙ τ);  agree_t = [sign w_t τ_t = σ];
              out = Σ_t w_t τ_t agree_t / (Σ_t w_t agree_t, or 1 where that is 0)
    Zeros (trimmed or dropped entries) never agree.  ``stack`` is overwritten.  Streams over t with
    three buffers of shape … (``work``: optional 3 × … float32 scratch) into ``out`` (optional, shape
    …, overwritten and returned); every sum runs over t in order, as ``stack.sum(0)`` does.
    """
    w = torch.tensor(list(weights), dtype=stack.dtype, device=stack.device)
    if variant == "mergekit":
        for t in range(stack.shape[0]):
            stack[t].mul_(w[t])
    agree = torch.empty_like(stack[0]) if work is None else work[0]
    sigma = elect_sign(stack, election, tmp=agree, votes=None if work is None else work[1])
    norm = torch.zeros_like(sigma) if work is None else work[2].zero_()
    out = torch.zeros_like(sigma) if out is None else out.zero_()
    for t in range(stack.shape[0]):
        agree = torch.mul(stack[t], sigma, out=agree).gt_(0)  # [sign τ_t = σ] as float 1/0
        if variant == "mergekit":
            norm.add_(agree, alpha=float(w[t]))  # Σ_t w_t agree_t
        else:
            norm.add_(agree)  # Σ_t agree_t
            if w[t] != 1:  # × 1 is exact: skip the pass
                stack[t].mul_(w[t])
        out.addcmul_(stack[t], agree)  # + w_t τ_t agree_t (the product is exact: agree is 0 or 1)
    norm = norm.masked_fill_(norm == 0, 1.0) if variant == "mergekit" else norm.clamp_min_(1)
    return out.div_(norm)
