"""KnOTS, TSV-M and Iso-C against dense naive versions (dense SVDs of the d_out × d_in updates)."""

from __future__ import annotations

import pytest
import torch
from merge_testlib import assert_close, naive_ties, naive_trim, random_updates

from osrm_core.merge import METHODS


def run(key, updates, **params):
    m = METHODS[key]
    return m.fn(updates, m.params.model_validate(params), None)


def dense_svd(M, tol=1e-9):
    U, S, Vh = torch.linalg.svd(M.double(), full_matrices=False)
    keep = S > tol * S.max()
    return U[:, keep], S[keep], Vh[keep]


def exact_deltas(u):
    return [u.scale[t] * u.B[t].double() @ u.A[t].double() for t in range(u.num_tasks)]


# ---------------------------------------------------------------- KnOTS

def naive_knots(u, density, lam, weights, merge="ties"):
    taus = exact_deltas(u)
    U, S, Vh = dense_svd(torch.cat(taus, dim=1))  # [τ_1 … τ_T] = U S V^T
    d_in = u.shape[1]
    coeffs = [naive_trim((torch.diag(S) @ Vh[:, t * d_in:(t + 1) * d_in]).float(), density) for t in range(len(taus))]
    if merge == "ties":
        merged = naive_ties(coeffs, weights, "total", "peft", lam)
    else:
        merged = lam * sum(w * c for w, c in zip(weights, coeffs))
    return U @ merged.double()


@pytest.mark.parametrize("merge", ["ties", "ta"])
def test_knots_matches_dense_naive(merge):
    u = random_updates(T=3, d_out=9, d_in=6, ranks=[2, 1, 3], seed=4)
    w = [1.0, 0.5, 2.0]
    res = run("knots", u, merge=merge, density=0.5, weights=w, **{"lambda": 0.6})
    assert res.factors[1].shape == (9, 6)  # U: d_out × Σ r_t
    assert_close(res.delta, naive_knots(u, 0.5, 0.6, w, merge), rtol=1e-4, atol=1e-5)


def test_knots_ta_without_trim_is_task_arithmetic():
    u = random_updates(T=3, seed=5)
    res = run("knots", u, merge="ta", density=1.0, **{"lambda": 0.3})
    assert_close(res.delta, run("task_arithmetic", u, **{"lambda": 0.3}).delta, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- TSV-M

def naive_tsv_m(u, alpha, fraction=None):
    T = u.num_tasks
    k = max(1, int((fraction or 1 / T) * min(u.shape)))
    parts = [dense_svd(d) for d in exact_deltas(u)]
    U = torch.cat([p[0][:, :k] for p in parts], dim=1)
    S = torch.cat([p[1][:k] for p in parts])
    Vh = torch.cat([p[2][:k] for p in parts], dim=0)
    Uu, _, Vu = torch.linalg.svd(U, full_matrices=False)  # polar factors, as the authors' code
    Uv, _, Vv = torch.linalg.svd(Vh, full_matrices=False)
    return alpha * (Uu @ Vu) @ torch.diag(S) @ (Uv @ Vv)


@pytest.mark.parametrize("fraction", [None, 0.2])
def test_tsv_m_matches_dense_naive(fraction):
    u = random_updates(T=3, d_out=12, d_in=10, ranks=[3, 2, 4], seed=6)
    res = run("tsv_m", u, alpha=0.8, fraction=fraction)
    # k = ⌊10/3⌋ = 3 per task (capped at the ranks 3, 2, 3) or ⌊0.2·10⌋ = 2
    assert res.info["kept_per_task"] == ([3, 2, 3] if fraction is None else [2, 2, 2])
    assert_close(res.delta, naive_tsv_m(u, 0.8, fraction), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- Iso-C

def test_iso_c_matches_dense_naive():
    u = random_updates(T=3, d_out=12, d_in=10, seed=7)
    U, S, Vh = dense_svd(sum(exact_deltas(u)))
    assert_close(run("iso_c", u, alpha=1.3).delta, 1.3 * S.mean() * U @ Vh, rtol=1e-4, atol=1e-5)
    # spectrum "full" (authors, dense task vectors): mean over all min(d) values.  Only well defined
    # when the sum has full rank (otherwise the null-space singular vectors are arbitrary).
    u = random_updates(T=3, d_out=12, d_in=10, ranks=[4, 4, 3], seed=7)
    U, S, Vh = torch.linalg.svd(sum(exact_deltas(u)), full_matrices=False)
    full = run("iso_c", u, alpha=1.3, spectrum="full")
    assert_close(full.delta, 1.3 * S.mean() * U @ Vh, rtol=1e-4, atol=1e-5)
    assert full.info["rank"] == 10
