"""OSRM subspace math: orthonormality, optimality, null space, leave-one-out, determinism."""

import pytest
import torch

from osrm_core import subspace
from osrm_core.errors import OsrmError


def _features(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)


def test_rows_orthonormal_and_optimal():
    h = _features(200, 24, 0)
    gram = h.T @ h
    a, eig, _ = subspace.smallest_subspace(gram, 5, seed=1)
    torch.testing.assert_close(a @ a.T, torch.eye(5, dtype=torch.float64), atol=1e-10, rtol=0)
    # Ky Fan: the attained objective is the sum of the 5 smallest eigenvalues, and it is minimal
    vals = torch.linalg.eigvalsh(gram)
    assert subspace.objective(a, gram) == pytest.approx(float(vals[:5].sum()), rel=1e-8)
    assert subspace.objective(a, gram) == pytest.approx(float((a @ h.T).pow(2).sum()), rel=1e-8)
    for seed in range(20):
        rand = subspace.random_orthonormal(5, 24, seed)
        assert subspace.objective(a, gram) <= subspace.objective(rand, gram) + 1e-9


def test_task_mean_is_null_space():
    """Task-mean: H has T-1 rows, so A H^T = 0 while T-1 < d_in - r."""
    means = _features(7, 40, 3)  # 7 other tasks, d_in = 40, r = 8: 7 < 32
    gram = means.T @ means
    a, _, degenerate = subspace.smallest_subspace(gram, 8, seed=0)
    assert degenerate == 8  # every row picked inside the (40-7)-dim null space
    assert (a @ means.T).abs().max() < 1e-10
    torch.testing.assert_close(a @ a.T, torch.eye(8, dtype=torch.float64), atol=1e-10, rtol=0)


def test_degenerate_choice_is_basis_independent():
    """Rotating the null-space basis that eigh returns must not change A (a deterministic, documented pick)."""
    means = _features(3, 16, 5)
    gram = means.T @ means
    a1, _, _ = subspace.smallest_subspace(gram, 4, seed=7)
    q, _ = torch.linalg.qr(_features(16, 16, 9))
    a2, _, _ = subspace.smallest_subspace(q.T @ gram @ q, 4, seed=7)  # same problem in rotated coordinates
    # the projector onto the chosen span is what is invariant under a change of coordinates of G
    p1 = a1.T @ a1
    assert (a1 @ means.T).abs().max() < 1e-10 and (a2 @ (means @ q).T).abs().max() < 1e-10
    a1b, _, _ = subspace.smallest_subspace(gram.clone(), 4, seed=7)
    torch.testing.assert_close(a1, a1b)
    assert not torch.allclose(p1, torch.zeros_like(p1))


def test_leave_one_out_equals_direct():
    rows = {t: _features(10 + i, 12, i).float() for i, t in enumerate("abcd")}
    grams = {t: subspace.sample_gram(r) for t, r in rows.items()}
    counts = {t: r.shape[0] for t, r in rows.items()}
    g, n = subspace.leave_one_out(grams, counts, "b")
    direct = torch.cat([rows[t] for t in "acd"]).double()
    torch.testing.assert_close(g, direct.T @ direct, rtol=1e-10, atol=1e-8)
    assert n == direct.shape[0]
    a_loo, _, _ = subspace.smallest_subspace(g, 3, 0)
    a_dir, _, _ = subspace.smallest_subspace(direct.T @ direct, 3, 0)
    torch.testing.assert_close(a_loo.T @ a_loo, a_dir.T @ a_dir, atol=1e-8, rtol=0)


def test_rank_out_of_range_is_user_error():
    with pytest.raises(OsrmError, match="lora.rank"):
        subspace.smallest_subspace(torch.eye(4, dtype=torch.float64), 4)


def test_polar_and_distance():
    a = _features(4, 10, 2).float()
    p = subspace.polar(a)
    torch.testing.assert_close(p @ p.T, torch.eye(4), atol=1e-5, rtol=0)
    assert subspace.normalised_distance(p, p) == 0.0
    assert subspace.normalised_distance(2 * p, p) == pytest.approx(1.0)
