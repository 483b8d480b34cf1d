"""SVD truncation (to_low_rank, truncate) and factored SVD."""

from __future__ import annotations

import pytest
import torch
from merge_testlib import assert_close, random_updates

from osrm_core.errors import OsrmError
from osrm_core.merge import METHODS
from osrm_core.merge.lowrank import factored_svd, polar, to_low_rank, truncate


def test_to_low_rank_is_the_eckart_young_truncation():
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(12, 8, generator=g)
    A, B, rel = to_low_rank(delta, 3)
    assert A.shape == (3, 8) and B.shape == (12, 3)
    U, S, Vh = torch.linalg.svd(delta.double())
    best = U[:, :3] @ torch.diag(S[:3]) @ Vh[:3]
    assert_close(B @ A, best, rtol=1e-4, atol=1e-5)
    naive = float(torch.linalg.norm(delta.double() - (B @ A).double()) / torch.linalg.norm(delta.double()))
    assert rel == pytest.approx(naive, rel=1e-4)
    assert_close(A @ A.T, B.T @ B, rtol=1e-4, atol=1e-4)  # √σ split on both sides


def test_to_low_rank_exact_for_low_rank_input_and_pads():
    g = torch.Generator().manual_seed(1)
    delta = torch.randn(6, 2, generator=g) @ torch.randn(2, 5, generator=g)
    A, B, rel = to_low_rank(delta, 2)
    assert rel < 1e-5
    assert_close(B @ A, delta, atol=1e-5)
    A, B, rel = to_low_rank(delta, 7)  # more than min(d_out, d_in) = 5: zero padding
    assert A.shape == (7, 5) and B.shape == (6, 7) and rel < 1e-6
    assert_close(B @ A, delta, atol=1e-5)
    assert to_low_rank(torch.zeros(3, 4), 2)[2] == 0.0
    with pytest.raises(OsrmError):
        to_low_rank(delta, 0)


def test_factored_svd_matches_dense_svd():
    g = torch.Generator().manual_seed(2)
    B, A = torch.randn(10, 4, generator=g), torch.randn(4, 7, generator=g)
    B[:, 3] = B[:, 0]  # rank 3 product after A's rows 0 and 3 combine
    U, S, Vh = factored_svd(B, A)
    dense = torch.linalg.svdvals(B.double() @ A.double())
    assert S.numel() == 3
    assert_close(S, dense[:3], rtol=1e-9, atol=1e-9)
    assert_close(U @ torch.diag(S) @ Vh, (B.double() @ A.double()), rtol=1e-9, atol=1e-9)
    assert_close(U.T @ U, torch.eye(3, dtype=torch.float64), atol=1e-10)
    assert_close(Vh @ Vh.T, torch.eye(3, dtype=torch.float64), atol=1e-10)


def test_polar_gives_orthonormal_columns_nearest_in_frobenius():
    g = torch.Generator().manual_seed(3)
    M = torch.randn(8, 3, generator=g, dtype=torch.float64)
    P = polar(M)
    assert_close(P.T @ P, torch.eye(3, dtype=torch.float64), atol=1e-10)
    Q, _ = torch.linalg.qr(M)  # another orthonormal basis of the same span is not closer
    assert torch.linalg.norm(M - P) <= torch.linalg.norm(M - Q) + 1e-12


# ---------------------------------------------------------------- truncate (merge.low_rank)

def frozen_stage_truncate(res, rank):
    """Verbatim copy of the stage's former ``truncate`` (stages/merge.py), the bit-identity reference."""
    if res.factors is None:
        A, B, err = to_low_rank(res.delta, rank)
        return (A, B), err
    U, S, Vh = factored_svd(res.factors[1], res.factors[0])
    k = min(rank, S.numel())
    total = float(S.square().sum())
    err = (float(S[k:].square().sum()) / total) ** 0.5 if total > 0 else 0.0
    root = S[:k].sqrt()
    A, B = (root[:, None] * Vh[:k]).float(), (U[:, :k] * root[None, :]).float()
    if k < rank:
        A = torch.cat([A, A.new_zeros(rank - k, A.shape[1])])
        B = torch.cat([B, B.new_zeros(B.shape[0], rank - k)], dim=1)
    return (A.contiguous(), B.contiguous()), err


@pytest.mark.parametrize("rank", [1, 3, 6, 9])  # 6 = Σ r_t; 9 pads the factored result
@pytest.mark.parametrize("key", ["task_arithmetic", "regmean", "ties"])  # factored, factored, dense
def test_truncate_is_bit_identical_to_the_stage_copy_and_eckart_young(key, rank):
    u = random_updates(T=3, d_out=10, d_in=8, ranks=2, grams=True, seed=rank)
    m = METHODS[key]
    res = m.fn(u, m.params(), None)
    assert (res.factors is None) == (key == "ties")
    (A, B), err = truncate(res, rank)
    (A0, B0), err0 = frozen_stage_truncate(res, rank)
    assert torch.equal(A, A0) and torch.equal(B, B0) and err == err0
    assert A.shape == (rank, 8) and B.shape == (10, rank) and A.dtype == B.dtype == torch.float32
    S = torch.linalg.svdvals(res.delta.double())
    assert err == pytest.approx(float((S[rank:].square().sum() / S.square().sum()).sqrt()), rel=1e-4, abs=1e-6)
    naive = float(torch.linalg.norm(res.delta.double() - (B @ A).double()) / torch.linalg.norm(res.delta.double()))
    assert err == pytest.approx(naive, rel=1e-3, abs=1e-5)
    with pytest.raises(OsrmError, match="low_rank"):
        truncate(res, 0)
