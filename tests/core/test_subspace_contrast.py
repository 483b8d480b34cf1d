"""The contrastive objective: top generalised eigenvectors of S_t v = mu (S_¬t + eps I) v, against SciPy and a planted case."""

import pytest
import scipy.linalg
import torch

from osrm_core import subspace
from osrm_core.errors import OsrmError
from osrm_pipeline.pipeline_config import parse_config


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _psd(n, d, seed):
    h = torch.randn(n, d, generator=_gen(seed), dtype=torch.float64)
    return h.T @ h / n


def _projector(rows):
    q, _ = torch.linalg.qr(rows.double().T)
    return q @ q.T


@pytest.mark.parametrize("n_own,n_other,ridge", [(50, 60, 1e-2), (8, 12, 1e-2), (50, 10, 1e-3), (30, 40, 1.0)])
def test_matches_scipy_generalised_eigh(n_own, n_other, ridge):
    """Same span and eigenvalues as scipy.linalg.eigh(S_own, S_other + eps I), also when S_own or S_other is singular."""
    d, r = 20, 4
    s_own, s_other = _psd(n_own, d, 1), _psd(n_other, d, 2)
    a, mu, _, eps = subspace.contrast_subspace(s_own, s_other, r, ridge, seed=0)
    assert eps == pytest.approx(ridge * float(torch.trace(s_other)) / d, rel=1e-12)
    b = s_other + eps * torch.eye(d, dtype=torch.float64)
    vals, vecs = scipy.linalg.eigh(s_own.numpy(), b.numpy(), subset_by_index=[d - r, d - 1])
    torch.testing.assert_close(mu, torch.from_numpy(vals[::-1].copy()), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(_projector(a), _projector(torch.from_numpy(vecs).T), atol=1e-8, rtol=0)
    torch.testing.assert_close(a @ a.T, torch.eye(r, dtype=torch.float64), atol=1e-12, rtol=0)


def test_sign_rule_and_determinism():
    """Row 1 is the top generalised eigenvector, normalised, largest-|.| entry positive; same input twice: same bits."""
    d, r = 16, 3
    s_own, s_other = _psd(40, d, 3), _psd(40, d, 4)
    a, _, degenerate, eps = subspace.contrast_subspace(s_own, s_other, r, 1e-2, seed=5)
    b = subspace.contrast_subspace(s_own.clone(), s_other.clone(), r, 1e-2, seed=5)[0]
    assert torch.equal(a, b) and degenerate == 0
    vals, vecs = scipy.linalg.eigh(s_own.numpy(), (s_other + eps * torch.eye(d, dtype=torch.float64)).numpy())
    top = torch.from_numpy(vecs[:, -1])
    top = top / top.norm() * torch.sign(top[top.abs().argmax()])
    torch.testing.assert_close(a[0], top, atol=1e-9, rtol=0)


def test_mean_or_sum_of_other_tasks_same_subspace():
    """S_¬t as the mean or the sum of the other tasks' moments: eps follows the scale, so the span is the same."""
    s_own, s_other = _psd(30, 12, 6), _psd(30, 12, 7)
    a_mean = subspace.contrast_subspace(s_own, s_other, 3, 1e-2)[0]
    a_sum = subspace.contrast_subspace(s_own, 7.0 * s_other, 3, 1e-2)[0]
    torch.testing.assert_close(a_sum, a_mean, atol=1e-10, rtol=0)


class PlantedCache:
    """Task features x = R D^1/2 z: variances D (d) in coordinates rotated by R; rows (float32) and a token Gram."""

    def __init__(self, variances, rot, n, seed):
        x = torch.randn(n, len(variances), generator=_gen(seed), dtype=torch.float64) * variances.sqrt() @ rot.T
        self._rows, self._gram, self._n = x.float(), x.T @ x, n

    def rows(self, module):
        return self._rows

    def gram(self, module):
        return self._gram

    def count(self, module):
        return self._n


def _planted(d=24, r=3, n=4000):
    """Task 'a' is strong (variance 25) in a planted r-dim subspace where the others have variance 1; every task,
    'a' included, is nearly empty (1e-4) in another r dims: the paper's objective goes there, contrast must not."""
    rot, _ = torch.linalg.qr(torch.randn(d, d, generator=_gen(11), dtype=torch.float64))
    base = torch.ones(d, dtype=torch.float64)
    base[d - r:] = 1e-4
    own = base.clone()
    own[:r] = 25.0
    caches = {"a": PlantedCache(own, rot, n, 0)} | {t: PlantedCache(base, rot, n, i + 1) for i, t in enumerate("bcd")}
    return caches, rot[:, :r].T, rot[:, d - r:].T


@pytest.mark.parametrize("estimator", ["sample-mean", "token"])
def test_planted_subspace_found_by_contrast_avoided_by_paper(estimator):
    caches, planted, empty = _planted()
    r, d = planted.shape
    a_null, rep_null = subspace.solve_subspaces(caches, ["m"], ["a"], estimator, r, 42)
    a_con, rep_con = subspace.solve_subspaces(caches, ["m"], ["a"], estimator, r, 42, "contrast")
    a_null, rep_null, a_con, rep_con = a_null["a"]["m"], rep_null["a"]["m"], a_con["a"]["m"], rep_con["a"]["m"]
    p = _projector(planted)
    assert (_projector(a_con) - p).norm() / (2 * r) ** 0.5 < 0.1  # contrast finds the planted span
    assert float(torch.trace(_projector(a_null) @ p)) / r < 0.05  # the paper's objective avoids it...
    assert (_projector(a_null) - _projector(empty)).norm() / (2 * r) ** 0.5 < 0.1  # ...and goes where all are empty
    assert rep_con["own_energy_ratio"] > 5 > 0.01 > rep_null["own_energy_ratio"]
    assert rep_null["other_energy_ratio"] < 0.01 and 0.5 < rep_con["other_energy_ratio"] < 1.5
    assert rep_con["ridge"] > 0 and len(rep_con["eigenvalues"]) == r and "ridge" not in rep_null
    assert rep_con["eigenvalues"] == sorted(rep_con["eigenvalues"], reverse=True)
    assert rep_con["objective"] == pytest.approx(subspace.objective(a_con, _other_gram(caches, estimator)), rel=1e-5)


def _other_gram(caches, estimator):
    """G_¬a summed directly (the paper objective's matrix, unnormalised)."""
    return sum(subspace.task_gram(c, "m", estimator)[0] for t, c in caches.items() if t != "a")


def test_energy_ratios_against_naive_formula():
    """own/other ratio = tr(Q S Qᵀ)/tr(S)·d/r with S_j = G_j/n_j and S_¬t the mean over the other tasks."""
    caches, _, _ = _planted(d=10, r=2, n=30)
    caches["c"] = PlantedCache(torch.linspace(0.1, 3, 10, dtype=torch.float64), torch.eye(10, dtype=torch.float64), 90, 9)
    for objective in (None, "contrast"):
        tensors, report = subspace.solve_subspaces(caches, ["m"], ["b"], "token", 2, 42, objective)
        q = tensors["b"]["m"].double()
        s = {t: c.gram("m") / c.count("m") for t, c in caches.items()}
        s_other = (s["a"] + s["c"] + s["d"]) / 3
        naive = {"own_energy_ratio": s["b"], "other_energy_ratio": s_other}
        for key, mat in naive.items():
            expected = float(torch.trace(q @ mat @ q.T) / torch.trace(mat)) * 10 / 2
            assert report["b"]["m"][key] == pytest.approx(expected, rel=1e-6)
    iso = subspace.energy_ratio(subspace.random_orthonormal(3, 12, 0), torch.eye(12, dtype=torch.float64))
    assert iso == pytest.approx(1.0, rel=1e-12)


def test_contrast_with_task_mean_is_a_config_error():
    with pytest.raises(OsrmError, match=r"field 'osrm'.*task-mean.*use estimator sample-mean or token"):
        parse_config({"osrm": {"objective": "contrast", "estimator": "task-mean"}})
    assert parse_config({"osrm": {"objective": "contrast"}}).osrm.contrast_ridge == 1e-2
    with pytest.raises(OsrmError, match="contrast_ridge"):
        parse_config({"osrm": {"objective": "contrast", "contrast_ridge": 0}})
    with pytest.raises(OsrmError, match="objective"):
        parse_config({"osrm": {"objective": "paper"}})


def test_contrast_too_few_own_rows_is_one_line_error():
    caches = {t: PlantedCache(torch.ones(10, dtype=torch.float64), torch.eye(10, dtype=torch.float64), n, i)
              for i, (t, n) in enumerate({"a": 2, "b": 9, "c": 9}.items())}
    with pytest.raises(OsrmError, match=r"^osrm.k: task 'a' has only 2 feature rows, fewer than lora.rank=3.*raise osrm.k$"):
        subspace.solve_subspaces(caches, ["m"], ["a"], "sample-mean", 3, 42, "contrast")


def _ratio_trace(a, s, b):
    return float(torch.trace(torch.linalg.solve(a @ b @ a.T, a @ s @ a.T)))


def _trace_ratio(a, s, b):
    return float(torch.trace(a @ s @ a.T) / torch.trace(a @ b @ a.T))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contrast_maximises_the_ratio_trace_not_the_trace_ratio(seed):
    """docs/osrm.md, "What it maximises": A attains tr((A B A^T)^-1 A S A^T) = sum of the top-r mu, random
    orthonormal A do not exceed it, and the trace ratio tr(A S A^T)/tr(A B A^T) is a different objective
    (its iterative optimum beats the contrast rows on it)."""
    d, r, ridge = 16, 4, 1e-2
    s_own, s_other = _psd(40, d, 10 + seed), _psd(60, d, 20 + seed)
    s_own = s_own + torch.diag(torch.linspace(0, 3, d, dtype=torch.float64))  # anisotropic, unlike S_other
    a, mu, _, eps = subspace.contrast_subspace(s_own, s_other, r, ridge, seed=0)
    b = s_other + eps * torch.eye(d, dtype=torch.float64)
    best = _ratio_trace(a, s_own, b)
    vals = scipy.linalg.eigh(s_own.numpy(), b.numpy(), eigvals_only=True)
    assert best == pytest.approx(float(mu.sum()), rel=1e-9)
    assert best == pytest.approx(float(vals[-r:].sum()), rel=1e-9)
    gen = _gen(100 + seed)
    for _ in range(200):
        q, _ = torch.linalg.qr(torch.randn(d, r, generator=gen, dtype=torch.float64))
        assert _ratio_trace(q.T, s_own, b) <= best * (1 + 1e-12)
    # the trace ratio over orthonormal A: fixed-point iteration lam <- tr(ASA^T)/tr(ABA^T), A = top-r of S - lam B
    lam = _trace_ratio(a, s_own, b)
    for _ in range(100):
        _, vecs = torch.linalg.eigh(s_own - lam * b)
        top = vecs[:, -r:].T
        lam = _trace_ratio(top, s_own, b)
    assert lam > _trace_ratio(a, s_own, b) * (1 + 1e-6)
