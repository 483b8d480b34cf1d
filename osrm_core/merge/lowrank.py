"""Low-rank algebra for merged updates: SVD truncation and exact SVDs of factored products.

``to_low_rank`` turns a dense merged update into a LoRA pair (a single PEFT adapter); ``truncate``
does the same for any ``MergeResult`` (dense or factored: ``merge.low_rank``).
``factored_svd`` computes the thin SVD of ``B @ A`` from the factors alone (two QRs and an R×R SVD),
so the SVD-based methods (KnOTS, TSV-M, Iso-C) never form a ``d_out × d_in`` matrix they do not need.
"""

from __future__ import annotations

import torch
from torch import Tensor

from osrm_core.errors import OsrmError
from osrm_core.merge.types import MergeResult

# singular values below REL_TOL · σ_max are treated as exact zeros (float64 arithmetic on float32 inputs)
REL_TOL = 1e-9


def balanced_factors(U: Tensor, S: Tensor, Vh: Tensor) -> tuple[Tensor, Tensor]:
    """Split ``U diag(S) Vh`` as ``B @ A`` with ``B = U √S`` (d_out × k), ``A = √S Vh`` (k × d_in)."""
    root = S.clamp_min(0).sqrt()
    return root[:, None] * Vh, U * root[None, :]


def to_low_rank(delta: Tensor, rank: int) -> tuple[Tensor, Tensor, float]:
    """Best rank-``rank`` approximation (Eckart–Young) of ``delta`` (d_out × d_in) via SVD.

    Returns ``A`` (rank × d_in), ``B`` (d_out × rank) with ``B @ A ≈ delta`` (√σ on each side) and the
    relative Frobenius error ``||delta − B A||_F / ||delta||_F`` (0.0 for a zero delta).  When ``rank``
    exceeds ``min(d_out, d_in)`` the extra rows/columns are zero, so the adapter keeps the asked rank.
    """
    _check_rank(rank)
    U, S, Vh = torch.linalg.svd(delta.detach().to(torch.float32), full_matrices=False)
    return _truncated_factors(U, S, Vh, rank)


def truncate(res: MergeResult, rank: int) -> tuple[tuple[Tensor, Tensor], float]:
    """Best rank-``rank`` factors ``(A: rank × d_in, B: d_out × rank)``, float32, of a merged result and
    the relative Frobenius error ``||Δ − B A||_F / ||Δ||_F``.  Dense results (``res.factors`` is None)
    go through ``to_low_rank``; factored ones through ``factored_svd`` of their factors (never densified)."""
    if res.factors is None:
        A, B, err = to_low_rank(res.delta, rank)
        return (A, B), err
    _check_rank(rank)
    U, S, Vh = factored_svd(res.factors[1], res.factors[0])
    A, B, err = _truncated_factors(U, S, Vh, rank)
    return (A, B), err


def _check_rank(rank: int) -> None:
    if rank < 1:
        raise OsrmError(f"low-rank output: rank must be >= 1, got {rank}; set merge.low_rank to a positive integer (or null).")


def _truncated_factors(U: Tensor, S: Tensor, Vh: Tensor, rank: int) -> tuple[Tensor, Tensor, float]:
    """Rank-``rank`` balanced float32 factors of a thin SVD (``U``: d_out × n, ``S``: n, ``Vh``: n × d_in,
    σ descending), zero-padded when n < rank, and the relative tail error ``sqrt(Σ_{i>k} σ_i² / Σ σ_i²)``."""
    k = min(rank, S.numel())
    A, B = balanced_factors(U[:, :k], S[:k], Vh[:k])
    A, B = A.float(), B.float()
    # ||M − B_k A_k||_F^2 = Σ_{i>k} σ_i^2 (exact in the SVD basis; avoids forming B @ A)
    total = float(S.double().square().sum())
    rel = (float(S[k:].double().square().sum()) / total) ** 0.5 if total > 0 else 0.0
    if k < rank:
        A = torch.cat([A, A.new_zeros(rank - k, A.shape[1])], dim=0)
        B = torch.cat([B, B.new_zeros(B.shape[0], rank - k)], dim=1)
    return A.contiguous(), B.contiguous(), rel


def factored_svd(B: Tensor, A: Tensor, rel_tol: float = REL_TOL) -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD of ``M = B @ A`` without forming M, in float64.

    B: d_out × R, A: R × d_in.  QR: ``B = Q_b R_b``, ``A^T = Q_a R_a``, so ``M = Q_b (R_b R_a^T) Q_a^T``;
    the SVD of the small core ``R_b R_a^T = U_c S V_c^T`` gives ``U = Q_b U_c``, ``Vh = V_c^T Q_a^T``.
    Returns ``U`` (d_out × k), ``S`` (k,), ``Vh`` (k × d_in), keeping only ``σ > rel_tol · σ_max``
    (the numerical rank k ≤ R).  All float64.
    """
    Qb, Rb = torch.linalg.qr(B.double())
    Qa, Ra = torch.linalg.qr(A.double().T)
    Uc, S, Vch = torch.linalg.svd(Rb @ Ra.T, full_matrices=False)
    keep = S > rel_tol * S.max() if S.numel() and S.max() > 0 else torch.zeros_like(S, dtype=torch.bool)
    return Qb @ Uc[:, keep], S[keep], Vch[keep] @ Qa.T


def polar(M: Tensor) -> Tensor:
    """Orthogonal polar factor ``P = U V^T`` of ``M = U Σ V^T`` (nearest matrix with orthonormal
    columns or rows, whichever is fewer; the Procrustes solution).  Same shape as M."""
    U, _, Vh = torch.linalg.svd(M, full_matrices=False)
    return U @ Vh
