"""The TIES/DARE family on one module in cache-sized row blocks (docs/merging.md, "The TIES/DARE family").

    Δ = λ · combine_t(w_t, sparsify(τ_t)),   τ_t = s_t B_t A_t   (d_out × d_in)

A T × d_out × d_in stack of the τ_t makes every elementwise pass a trip to DRAM (docs/benchmarks.md,
"TIES at Llama-3-8B shapes").  Here each τ_t is recomputed per row block from its rank-r factors
(r multiply-adds per entry), so the T blocks and the work buffers stay in the L2 cache and DRAM only
sees the factors, the output Δ and (DARE) the keep masks:

pass 1, per task in order: the magnitude trim's exact k-th largest |τ_t| (k = ⌊density · numel⌋)
    from a sampled bracket and the in-bracket entries collected over row blocks (as
    ``sparsify.kth_largest_count``, without τ_t whole); or DARE's Bernoulli keep masks, one draw per
    entry in flat order — the generator's stream of one draw over each whole τ_t.
pass 2, per row block: the T blocks τ_t[rows], sparsified (trim: keep |τ| > thr and the entries equal
    to thr in flat order until k are kept, a running budget per task), then the sign election and
    disjoint mean (``sparsify.ties_combine``) or the weighted sum, times λ, into Δ[rows].

Bit-identical to the un-blocked code: every elementwise op is the same op on the same values, and
the rows of B_t[rows] @ A_t are those of B_t @ A_t.  MKL (torch 2.13, CPU) gives the latter only when
the blocks follow its row panels: a block of 1–3 rows, or one that cuts a 16-row panel so that a
1–3-row tail lands elsewhere than in the full product, takes another kernel (measured).  So blocks
start at multiples of ``ROW_ALIGN`` rows and the last one takes the remainder, as the full product's
last panel does; ``benchmarks/ties_speed.py`` and ``tests/merge/test_ties_blocks.py`` check it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from osrm_core.merge.sparsify import SAMPLE, bracket_sample, drop_with_mask_, kth_largest_count, ties_combine
from osrm_core.merge.types import ModuleUpdates

if TYPE_CHECKING:
    from osrm_core.merge.generalized import Family

BLOCK_ELEMS = 1 << 16  # floats per task block (256 KiB at 16 × 4096): T = 8 blocks + 4 buffers stay in L2/L3
ROW_ALIGN = 16  # block starts: multiples of MKL's 16-row panel (see the module docstring)


def row_blocks(d_out: int, d_in: int, block_elems: int = BLOCK_ELEMS) -> list[tuple[int, int]]:
    """Row ranges ``[lo, hi)`` covering ``0..d_out``: ≈ block_elems / d_in rows, a multiple of
    ROW_ALIGN, each; the last range takes the remainder (so no range is shorter than the others)."""
    rows = max(1, block_elems // d_in // ROW_ALIGN) * ROW_ALIGN
    starts = list(range(0, max(1, d_out - rows + 1), rows))
    return list(zip(starts, starts[1:] + [d_out]))


def task_rows(u: ModuleUpdates, A: list[Tensor], t: int, lo: int, hi: int, out: Tensor) -> Tensor:
    """``τ_t[lo:hi] = s_t B_t[lo:hi] A_t`` into ``out`` ((hi − lo) × d_in float32); ``A``: the A_t as float32."""
    torch.matmul(u.B[t][lo:hi].float(), A[t], out=out)
    return out.mul_(float(u.scale[t]))


@dataclass
class TaskTrim:
    """Pass 1's trim of τ_t: keep |τ| > thr, and of the entries |τ| = thr the first ``budget`` in flat
    order (None: all).  ``thr`` None keeps everything (density 1).  ``kept``: the trimmed τ_t's
    nonzero count, or None when it must be counted (thr <= 0: some kept entries are zeros)."""

    thr: float | None
    budget: int | None
    kept: int | None

    def __post_init__(self) -> None:
        thr = torch.tensor(self.thr if self.thr is not None else 0.0)
        self.below = float(torch.nextafter(thr, torch.tensor(float("-inf"))))  # the float just below thr

    def apply_(self, blk: Tensor) -> Tensor:
        """Trim the next row block ``blk`` (rows × d_in) of τ_t in place; blocks come in row order."""
        if self.thr is None:
            return blk
        if self.budget == 0:  # ties all used up: hardshrink zeroes |x| <= thr
            return torch.hardshrink(blk, self.thr, out=blk)
        torch.hardshrink(blk, self.below, out=blk)  # keeps |x| >= thr
        if self.budget is not None:  # drop the tied entries past the budget (flat order)
            ties = (blk.abs() == self.thr).view(-1).nonzero()[:, 0]
            blk.view(-1)[ties[self.budget:]] = 0
            self.budget = max(0, self.budget - ties.numel())
        return blk


def trim_plan(u: ModuleUpdates, A: list[Tensor], t: int, density: float, blocks, buf: Tensor) -> TaskTrim:
    """Pass 1 of the magnitude trim for τ_t (``buf``: rows_max × d_in scratch): exact threshold,
    tie budget and kept count, the same top-k rule as ``sparsify.magnitude_trim_``."""
    n = u.shape[0] * u.shape[1]
    k = int(density * n)
    if density >= 1:
        return TaskTrim(None, None, None)
    if k <= 0:
        return TaskTrim(float("inf"), 0, 0)
    lo, hi = bracket(u, A, t, k)
    above, band = 0, []
    for r0, r1 in blocks:  # #{|τ| > hi} and the entries in [lo, hi], block by block
        mag = task_rows(u, A, t, r0, r1, buf[: r1 - r0]).abs_()
        above += int(torch.count_nonzero(mag > hi))
        band.append(torch.masked_select(mag, (mag >= lo) & (mag <= hi)))
    band = torch.cat(band)
    if above < k <= above + band.numel():
        thr = torch.kthvalue(band, band.numel() - (k - above) + 1).values
        at_least = above + int(torch.count_nonzero(band >= thr))
    else:  # the bracket missed (heavy ties): exact on τ_t whole, never wrong, only slower
        band = u.delta(t).abs_().view(-1)
        thr, at_least = kth_largest_count(band, k)
    ties = int(torch.count_nonzero(band == thr))
    extra = at_least - k  # tied entries to drop: keep ties − extra of them
    return TaskTrim(float(thr), None if extra == 0 else ties - extra, k if float(thr) > 0 else None)


def bracket(u: ModuleUpdates, A: list[Tensor], t: int, k: int) -> tuple[float, float]:
    """``(lo, hi)`` around the k-th largest |τ_t| from a seeded sample of SAMPLE entries (values need
    not be bit-exact: pass 1 checks the bracket); everything when τ_t has <= 4 SAMPLE entries."""
    d_out, d_in = u.shape
    n = d_out * d_in
    if n <= 4 * SAMPLE:
        return float("-inf"), float("inf")
    idx, ranks = bracket_sample(n, k)
    rows, cols = idx // d_in, idx % d_in
    probe = ((u.B[t][rows].float() * A[t].T.contiguous()[cols]).sum(1) * float(u.scale[t])).abs_()
    return tuple(float(torch.kthvalue(probe, i + 1).values) for i in ranks)  # = sorted probe[i], O(SAMPLE)


def dare_masks(u: ModuleUpdates, density: float, generator: torch.Generator) -> Tensor | None:
    """Pass 1 of DARE: T × d_out × d_in bool keep masks, m ~ Bernoulli(density), tasks in order, one
    draw per entry in flat order (the stream of ``bernoulli(full_like(τ_t, density))``); None at density 1."""
    if density >= 1:
        return None
    masks = torch.empty((u.num_tasks, *u.shape), dtype=torch.bool, device=u.A[0].device)
    p = torch.tensor(density, dtype=torch.float32, device=masks.device).expand(u.shape)
    for t in range(u.num_tasks):
        masks[t].bernoulli_(p, generator=generator)
    return masks


def merge_blocks(u: ModuleUpdates, cfg: Family, w: list[float], generator: torch.Generator | None) -> tuple[Tensor, dict]:
    """``Δ`` (d_out × d_in float32) of the family config ``cfg`` (any sparsify except DARE with
    consensus none) and ``info`` (magnitude: ``nonzero_fraction``, with sign consensus ``kept_fraction``)."""
    blocks = row_blocks(*u.shape, BLOCK_ELEMS)
    T, rows_max, d_in = u.num_tasks, blocks[-1][1] - blocks[-1][0], u.shape[1]
    A, dev = [a.float() for a in u.A], u.A[0].device
    stack = torch.empty((T, rows_max, d_in), device=dev)
    trims = [trim_plan(u, A, t, cfg.density, blocks, stack[0]) for t in range(T)] if cfg.sparsify == "magnitude" else None
    masks = dare_masks(u, cfg.density, generator) if cfg.sparsify == "dare" else None
    kept = sum(tr.kept for tr in trims if tr.kept is not None) if trims else 0
    work = torch.empty((3, rows_max, d_in), device=dev) if cfg.consensus == "sign" else None
    delta, nonzero = torch.empty(u.shape, device=dev), 0
    for lo, hi in blocks:
        blk, out = stack[:, : hi - lo], delta[lo:hi]
        for t in range(T):
            task_rows(u, A, t, lo, hi, blk[t])
            if trims is not None:
                trims[t].apply_(blk[t])
                kept += int(torch.count_nonzero(blk[t])) if trims[t].kept is None else 0
            elif masks is not None:
                drop_with_mask_(blk[t], masks[t, lo:hi], cfg.density, cfg.rescale)
        if cfg.consensus == "sign":  # elect + disjoint mean, then × λ
            ties_combine(blk, w, cfg.election, cfg.variant, work[:, : hi - lo], out).mul_(cfg.lambda_)
        else:  # Δ = λ Σ_t w_t sparsify(τ_t), summed over t in order
            out.zero_()
            for t in range(T):
                out.add_(blk[t], alpha=cfg.lambda_ * w[t])
        nonzero += int(torch.count_nonzero(out)) if trims is not None else 0
    info = {"nonzero_fraction": nonzero / delta.numel()} if trims is not None else {}
    if trims is not None and cfg.consensus == "sign":
        info["kept_fraction"] = kept / (T * delta.numel())
    return delta, info
