"""solve_subspaces (paper objective) is bit-identical to the build-subspace stage as it was before it moved here.

`_frozen_*` below is a verbatim copy of the previous stage loop and of the osrm_core.subspace functions it
called. The only intended difference is the `degenerate_rows` fix (0 when the r-th eigenvalue is not tied).
"""

import pytest
import torch

from osrm_core import subspace
from osrm_core.errors import OsrmError


def _frozen_leave_one_out(grams, counts, task):
    total = torch.zeros_like(next(iter(grams.values())), dtype=torch.float64)
    for g in grams.values():
        total += g.double()
    return total - grams[task].double(), sum(counts.values()) - counts[task]


def _frozen_fix_signs(vecs):
    idx = vecs.abs().argmax(0)
    sign = torch.sign(vecs[idx, torch.arange(vecs.shape[1])])
    sign[sign == 0] = 1
    return vecs * sign


def _frozen_orth(m):
    q, r = torch.linalg.qr(m)
    s = torch.sign(torch.diagonal(r))
    s[s == 0] = 1
    return q * s


def _frozen_smallest_subspace(gram, rank, seed=42, rel_tol=1e-9):
    d = gram.shape[0]
    g = gram.double()
    g = 0.5 * (g + g.T)
    vals, vecs = torch.linalg.eigh(g)
    tol = rel_tol * max(float(vals.abs().max()), 1e-300)
    boundary = vals[rank - 1]
    cluster = (vals - boundary).abs() <= tol
    below = int((~cluster[:rank]).sum())
    fixed = _frozen_fix_signs(vecs[:, :below])
    c = rank - below
    if c:
        q = vecs[:, cluster]
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(d, c, generator=gen, dtype=torch.float64)
        pick = _frozen_orth(q @ (q.T @ z))
        basis = torch.cat([fixed, pick], dim=1)
    else:
        basis = fixed
    a = basis.T.contiguous()
    return a, (a @ g @ a.T).diagonal().clone(), c


def _frozen_objective(a, gram):
    a = a.double()
    return float(torch.einsum("ij,jk,ik->", a, gram.double(), a))


def _frozen_random_orthonormal(rank, d, seed):
    gen = torch.Generator().manual_seed(seed)
    return _frozen_orth(torch.randn(d, rank, generator=gen, dtype=torch.float64)).T.contiguous()


def _frozen_solve_layer(gram, rank, seed):
    a, eigvals, degenerate = _frozen_smallest_subspace(gram, rank, seed)
    obj = _frozen_objective(a, gram)
    rand = _frozen_objective(_frozen_random_orthonormal(rank, gram.shape[0], seed), gram)
    row = {
        "objective": obj,
        "random_objective": rand,
        "ratio_to_random": obj / rand if rand > 0 else 0.0,
        "degenerate_rows": degenerate,
        "eigenvalues": [float(v) for v in eigvals],
        "trace": float(torch.trace(gram.double())),
    }
    return a.float(), row


def _frozen_task_gram(cache, module, estimator):
    if estimator == "token":
        return cache.gram(module), cache.count(module)
    rows = cache.rows(module)
    if estimator == "sample-mean":
        r = rows.double()
        return r.T @ r, rows.shape[0]
    m = rows.double().mean(0, keepdim=True)
    return m.T @ m, 1


def _frozen_stage(caches, modules, targets, estimator, rank, seed):
    tensors, report = {t: {} for t in targets}, {t: {} for t in targets}
    for module in modules:
        grams, counts = {}, {}
        for t, cache in caches.items():
            grams[t], counts[t] = _frozen_task_gram(cache, module, estimator)
        for t in targets:
            g, n = _frozen_leave_one_out(grams, counts, t)
            if estimator == "sample-mean" and n < rank:
                raise OsrmError(f"osrm.k: only {n} feature rows from other tasks, fewer than lora.rank={rank} — raise osrm.k")
            tensors[t][module], report[t][module] = _frozen_solve_layer(g, rank, seed)
            report[t][module]["rows"] = n
    return tensors, report


class FakeCache:
    """Duck-typed FeatureCache: k sample-mean rows (float32), a token Gram (float64) and a token count per module."""

    def __init__(self, modules, k, d, seed):
        g = torch.Generator().manual_seed(seed)
        mix = torch.randn(d, d, generator=g)
        self._rows = {m: (torch.randn(k, d, generator=g) @ mix + torch.randn(d, generator=g)).float() for m in modules}
        tokens = {m: torch.randn(3 * k, d, generator=g, dtype=torch.float64) @ mix.double() for m in modules}
        self._gram = {m: t.T @ t for m, t in tokens.items()}
        self._count = {m: t.shape[0] for m, t in tokens.items()}

    def rows(self, module):
        return self._rows[module]

    def gram(self, module):
        return self._gram[module]

    def count(self, module):
        return self._count[module]


def make_caches(tasks, modules, k, d, seed=0):
    return {t: FakeCache(modules, k, d, seed + 100 * i) for i, t in enumerate(tasks)}


@pytest.mark.parametrize("estimator", ["sample-mean", "task-mean", "token"])
@pytest.mark.parametrize("k,d", [(4, 20), (30, 12)])  # n_¬t < d (zero-eigenvalue cluster) and n_¬t > d
def test_paper_objective_bit_identical_to_previous_stage(estimator, k, d):
    tasks, modules, rank = ["a", "b", "c", "d"], ["l0.q", "l0.v", "l1.q"], 3
    caches = make_caches(tasks, modules, k, d)
    got_t, got_r = subspace.solve_subspaces(caches, modules, ["c", "a"], estimator, rank, 7)
    ref_t, ref_r = _frozen_stage(caches, modules, ["c", "a"], estimator, rank, 7)
    assert list(got_t) == list(ref_t) and list(got_r) == list(ref_r)
    for t in ref_t:
        assert list(got_t[t]) == modules
        for m in modules:
            assert got_t[t][m].dtype == torch.float32 and torch.equal(got_t[t][m], ref_t[t][m])
            new, old = got_r[t][m], ref_r[t][m]
            assert set(old) <= set(new)
            tied = d - old["rows"] >= rank  # >= rank zero eigenvalues: the r-th sits in the null-space cluster
            for key in set(old) - {"degenerate_rows"}:
                assert new[key] == old[key], key  # exact float equality, not approx
            assert new["degenerate_rows"] == (old["degenerate_rows"] if tied else 0)
            assert tied or old["degenerate_rows"] == 1  # the old count: 1 even without a tie


def test_sample_mean_too_few_rows_is_one_line_error():
    caches = make_caches(["a", "b"], ["m"], 2, 10)
    with pytest.raises(OsrmError, match=r"^osrm.k: only 2 feature rows from other tasks, fewer than lora.rank=3 — raise osrm.k$"):
        subspace.solve_subspaces(caches, ["m"], ["a"], "sample-mean", 3, 42)


def test_unknown_target_and_single_task_are_errors():
    caches = make_caches(["a", "b"], ["m"], 5, 8)
    with pytest.raises(OsrmError, match="'z' has no features"):
        subspace.solve_subspaces(caches, ["m"], ["z"], "sample-mean", 2, 42)
    with pytest.raises(OsrmError, match="at least 2 tasks"):
        subspace.solve_subspaces({"a": caches["a"]}, ["m"], ["a"], "sample-mean", 2, 42)


def test_total_summed_once_per_module(monkeypatch):
    """sum_j G_j and sum_j S_j: two sums per module, whatever the number of targets (not one per target)."""
    calls = []
    real = subspace.gram_total
    monkeypatch.setattr(subspace, "gram_total", lambda grams: calls.append(1) or real(grams))
    caches = make_caches(list("abcde"), ["m0", "m1"], 6, 8)
    subspace.solve_subspaces(caches, ["m0", "m1"], list("abcde"), "sample-mean", 2, 42)
    assert len(calls) == 2 * 2
