"""Fisher merging, RegMean and EMR against naive references."""

from __future__ import annotations

import pytest
import torch
from merge_testlib import assert_close, random_updates

from osrm_core.errors import OsrmError
from osrm_core.merge import METHODS


def run(key, updates, **params):
    m = METHODS[key]
    return m.fn(updates, m.params.model_validate(params), None)


# ---------------------------------------------------------------- Fisher merging

def test_fisher_merge_is_the_fisher_weighted_average_of_the_weights():
    u = random_updates(T=3, fishers=True, base=True)
    w = [1.0, 2.0, 0.5]
    res = run("fisher", u, weights=w, epsilon=0.0)
    thetas = [u.base + d for d in u.deltas()]  # W_t = W0 + τ_t
    merged = sum(w[t] * u.fishers[t] * thetas[t] for t in range(3)) / sum(w[t] * u.fishers[t] for t in range(3))
    assert_close(res.delta, merged - u.base, rtol=1e-4, atol=1e-5)  # W0 cancels


def test_fisher_floor_falls_back_to_average_and_normalize_is_scale_free():
    u = random_updates(T=2, fishers=True)
    u.fishers[0].zero_(), u.fishers[1].zero_()
    assert_close(run("fisher", u).delta, sum(u.deltas()) / 2)
    v = random_updates(T=2, fishers=True)
    a = run("fisher", v, normalize=True).delta
    v.fishers[1].mul_(1e4)
    assert_close(run("fisher", v, normalize=True).delta, a, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(run("fisher", v).delta, a, rtol=1e-3)


# ---------------------------------------------------------------- RegMean

def naive_regmean(u, alpha):
    """W = (Σ G'_t)^{-1} Σ G'_t W_t in the paper's (d_in × d_out) layout, W_t = W0 + τ_t."""
    grams = [alpha * G.double() + (1 - alpha) * torch.diag(torch.diagonal(G.double())) for G in u.grams]
    thetas_T = [(u.base.double() + d.double()).T for d in u.deltas()]
    W_T = torch.linalg.solve(sum(grams), sum(G @ th for G, th in zip(grams, thetas_T)))
    return W_T.T - u.base.double()


@pytest.mark.parametrize("alpha", [0.9, 1.0, 0.0])
def test_regmean_matches_the_closed_form_with_base(alpha):
    u = random_updates(T=3, grams=True, base=True)
    res = run("regmean", u, alpha=alpha, ridge=0.0)
    assert_close(res.delta, naive_regmean(u, alpha), rtol=1e-4, atol=1e-4)
    assert res.factors[0].shape == (6, 7)  # exact factors, rank Σ r_t
    assert_close(res.factors[1] @ res.factors[0], res.delta)


def test_regmean_token_mean_weights_each_gram_by_its_token_count():
    u = random_updates(T=3, grams=True, base=True, seed=9)
    u.counts = [5, 40, 300]  # unequal: the per-token means differ from the sums
    res = run("regmean", u, alpha=0.9, ridge=0.0)
    means = type(u)(A=u.A, B=u.B, scale=u.scale, base=u.base, grams=[G / n for G, n in zip(u.grams, u.counts)])
    assert_close(res.delta, naive_regmean(means, 0.9), rtol=1e-4, atol=1e-4)
    summed = run("regmean", u, alpha=0.9, ridge=0.0, gram_weighting="sum").delta
    assert_close(summed, naive_regmean(u, 0.9), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(summed, res.delta, rtol=1e-3, atol=1e-3)


def test_regmean_sum_is_the_previous_behaviour_bit_for_bit():
    u = random_updates(T=3, grams=True, seed=10)
    u.counts = None  # "sum" needs no counts
    new = run("regmean", u, gram_weighting="sum")
    M = sum(0.9 * G.double() + 0.1 * torch.diag(torch.diagonal(G.double())) for G in u.grams)
    rows = [float(u.scale[t]) * (u.A[t].double() @ (0.9 * u.grams[t].double() + 0.1 * torch.diag(torch.diagonal(u.grams[t].double()))))
            for t in range(3)]
    M.diagonal().add_(1e-6 * float(torch.diagonal(M).mean()))
    A = torch.linalg.solve(M, torch.cat(rows).T).T
    assert torch.equal(new.factors[0], A.float())


def test_regmean_token_mean_without_counts_is_a_one_line_user_error():
    u = random_updates(T=2, grams=True)
    u.counts = None
    with pytest.raises(OsrmError, match="counts") as err:
        run("regmean", u)
    assert "\n" not in str(err.value) and "gram_weighting" in str(err.value)
    with pytest.raises(OsrmError, match="counts"):
        type(u)(A=u.A, B=u.B, scale=u.scale, counts=[3])


def test_regmean_ridge_is_small_and_singular_gram_is_a_user_error():
    u = random_updates(T=2, grams=True)
    assert_close(run("regmean", u).delta, run("regmean", u, ridge=0.0).delta, rtol=1e-3, atol=1e-4)
    u.grams[0].zero_(), u.grams[1].zero_()
    with pytest.raises(OsrmError, match="ridge"):
        run("regmean", u, ridge=0.0)


# ---------------------------------------------------------------- EMR

def naive_emr(taus):
    """Entry loops, as the authors' emr_merge (flag = +1 where the mean is > 0, else −1)."""
    T, (n, m) = len(taus), taus[0].shape
    uni = torch.zeros(n, m)
    masks = [torch.zeros(n, m) for _ in range(T)]
    for i in range(n):
        for j in range(m):
            flag = 1.0 if sum(float(t[i, j]) for t in taus) / T > 0 else -1.0
            best = 0.0
            for t in range(T):
                if float(taus[t][i, j]) * flag > 0:
                    masks[t][i, j] = 1.0
                    best = max(best, abs(float(taus[t][i, j])))
            uni[i, j] = flag * best
    lams = [float(taus[t].abs().sum() / (masks[t] * uni).abs().sum()) for t in range(T)]
    return uni, [lams[t] * masks[t] * uni for t in range(T)], lams


def test_emr_matches_naive_loop():
    u = random_updates(T=3, d_out=6, d_in=5, seed=3)
    res = run("emr", u)
    uni, per_task, lams = naive_emr(u.deltas())
    assert_close(res.delta, uni)
    for t in range(3):
        assert_close(res.per_task[t], per_task[t], rtol=1e-5, atol=1e-5)
    assert res.info["rescalers"] == pytest.approx(lams, rel=1e-5)
    assert METHODS["emr"].per_task
