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


def test_degenerate_choice_is_basis_independent(monkeypatch):
    """Whatever basis of the null space eigh returns, A is the same (a deterministic, documented pick)."""
    means = _features(3, 16, 5)
    gram = means.T @ means
    a1, _, _ = subspace.smallest_subspace(gram, 4, seed=7)
    eigh = torch.linalg.eigh
    rot, _ = torch.linalg.qr(_features(13, 13, 9))  # an orthogonal mix of the 13 null-space eigenvectors

    def rotated_eigh(g):
        vals, vecs = eigh(g)
        return vals, torch.cat([vecs[:, :13] @ rot, vecs[:, 13:]], dim=1)

    monkeypatch.setattr(torch.linalg, "eigh", rotated_eigh)
    a2, _, degenerate = subspace.smallest_subspace(gram, 4, seed=7)
    assert degenerate == 4 and (a2 @ means.T).abs().max() < 1e-10
    torch.testing.assert_close(a2.T @ a2, a1.T @ a1, atol=1e-10, rtol=0)  # same span...
    torch.testing.assert_close(a2, a1, atol=1e-10, rtol=0)  # ...and the same rows


@pytest.mark.parametrize("spectrum,rank,expected", [
    ([1, 2, 3, 4, 5, 6, 7, 8], 3, 0),  # no tie anywhere
    ([1, 2, 3, 3, 3, 6, 7, 8], 2, 0),  # a tie after position r does not count
    ([1, 2, 3, 3, 3, 6, 7, 8], 3, 1),  # r-th value opens a 3-fold cluster: 1 row chosen inside it
    ([1, 2, 3, 3, 3, 6, 7, 8], 4, 2),
    ([0, 0, 0, 0, 0, 6, 7, 8], 4, 4),  # null space
])
def test_degenerate_rows_counts_rows_picked_in_a_tied_cluster(spectrum, rank, expected):
    q, _ = torch.linalg.qr(_features(8, 8, 4))
    gram = q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ q.T
    a, eig, degenerate = subspace.smallest_subspace(gram, rank, seed=3)
    assert degenerate == expected
    torch.testing.assert_close(eig, torch.tensor(spectrum[:rank], dtype=torch.float64), atol=1e-12, rtol=0)


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
