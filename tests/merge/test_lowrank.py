"""SVD truncation and factored SVD."""

from __future__ import annotations

import pytest
import torch
from merge_testlib import assert_close

from osrm_core.errors import OsrmError
from osrm_core.merge.lowrank import factored_svd, polar, to_low_rank


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
