"""Task arithmetic, TIES, DARE and magnitude pruning against naive loops and against PEFT.

PEFT comparisons (``peft.utils.merge_utils``) are to 1e-6 where the semantics agree: PEFT has no λ,
so we merge with λ = 1 and PEFT's weights = our per-task weights.  DARE: PEFT draws its masks from
the global RNG with one ``torch.bernoulli(full_like(τ_t, density))`` per task in order; we draw the
same call from the generator we are given, so seeding ``torch.manual_seed(s)`` for PEFT and
``torch.Generator().manual_seed(s)`` for us yields identical masks (both are the CPU Mersenne
Twister).  Independently of PEFT, the DARE tests also rebuild the masks from the seed and compare
with a naive merge on those fixed masks.
"""

from __future__ import annotations

import pytest
import torch
from merge_testlib import assert_close, naive_ties, naive_trim, random_updates

from osrm_core.merge import METHODS

pmu = pytest.importorskip("peft.utils.merge_utils")


def run(key, updates, seed=None, **params):
    m = METHODS[key]
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return m.fn(updates, m.params.model_validate(params), gen)


# ---------------------------------------------------------------- DARE masks


def dare_masks(updates, density, seed):
    """The masks our DARE draws: one Bernoulli(density) tensor per task, in task order."""
    g = torch.Generator().manual_seed(seed)
    return [torch.bernoulli(torch.full(updates.shape, density), generator=g) for _ in range(updates.num_tasks)]


# ---------------------------------------------------------------- task arithmetic / weight average

def test_task_arithmetic_and_average_match_naive_sum_and_peft():
    u = random_updates(T=3, ranks=[1, 2, 3])
    w = [1.0, -0.5, 2.0]
    res = run("task_arithmetic", u, **{"lambda": 0.4, "weights": w})
    naive = sum(0.4 * w[t] * u.scale[t] * u.B[t] @ u.A[t] for t in range(3))
    assert_close(res.delta, naive)
    assert res.factors[0].shape == (6, 7)  # exact, rank Σ r_t
    assert_close(run("task_arithmetic", u, **{"lambda": 1.0, "weights": w}).delta,
                 pmu.task_arithmetic(u.deltas(), torch.tensor(w)))
    assert_close(run("weight_average", u).delta, sum(u.deltas()) / 3)


# ---------------------------------------------------------------- TIES

@pytest.mark.parametrize("election", ["total", "frequency"])
@pytest.mark.parametrize("variant", ["peft", "mergekit"])
def test_ties_matches_naive_loop(election, variant):
    u = random_updates(T=4, d_out=6, d_in=5, seed=1)
    w = [1.0, 0.5, 2.0, 0.25]
    res = run("ties", u, density=0.4, election=election, variant=variant, weights=w, **{"lambda": 0.7})
    naive = naive_ties([naive_trim(d, 0.4) for d in u.deltas()], w, election, variant, 0.7)
    assert_close(res.delta, naive)


@pytest.mark.parametrize("election", ["total", "frequency"])
def test_ties_matches_peft(election):
    u = random_updates(T=3, d_out=16, d_in=12, ranks=4, seed=2)
    w = [1.0, 0.6, 1.7]
    res = run("ties", u, density=0.3, election=election, weights=w, **{"lambda": 1.0})
    assert_close(res.delta, pmu.ties(u.deltas(), torch.tensor(w), 0.3, election))


def test_ties_variants_agree_with_unit_weights_and_differ_otherwise():
    u = random_updates(T=3, d_out=8, d_in=6, seed=3)
    peft_like = run("ties", u, variant="peft").delta
    assert_close(run("ties", u, variant="mergekit").delta, peft_like)
    w = [3.0, 0.1, 1.0]
    assert not torch.allclose(run("ties", u, variant="mergekit", weights=w).delta, run("ties", u, weights=w).delta)


def test_magnitude_prune_matches_naive_and_peft():
    u = random_updates(T=3, d_out=8, d_in=6, seed=4)
    w = [1.0, 2.0, -1.0]
    res = run("magnitude_prune", u, density=0.25, weights=w, **{"lambda": 1.0})
    naive = sum(w[t] * naive_trim(d, 0.25) for t, d in enumerate(u.deltas()))
    assert_close(res.delta, naive)
    assert_close(res.delta, pmu.magnitude_prune(u.deltas(), torch.tensor(w), 0.25))


# ---------------------------------------------------------------- DARE

def test_dare_linear_matches_fixed_masks_and_peft():
    u = random_updates(T=3, d_out=10, d_in=8, seed=5)
    w = [1.0, 0.5, 1.5]
    res = run("dare_linear", u, seed=11, density=0.4, weights=w, **{"lambda": 1.0})
    masks = dare_masks(u, 0.4, 11)
    naive = sum(w[t] * d * masks[t] / 0.4 for t, d in enumerate(u.deltas()))
    assert_close(res.delta, naive)
    torch.manual_seed(11)
    assert_close(res.delta, pmu.dare_linear(u.deltas(), torch.tensor(w), 0.4))


@pytest.mark.parametrize("election", ["total", "frequency"])
def test_dare_ties_matches_fixed_masks_and_peft(election):
    u = random_updates(T=3, d_out=6, d_in=5, seed=6)
    w = [1.0, 0.5, 1.5]
    res = run("dare_ties", u, seed=12, density=0.6, election=election, weights=w, **{"lambda": 1.0})
    masks = dare_masks(u, 0.6, 12)
    dropped = [d * masks[t] / 0.6 for t, d in enumerate(u.deltas())]
    assert_close(res.delta, naive_ties(dropped, w, election, "peft", 1.0))
    torch.manual_seed(12)
    assert_close(res.delta, pmu.dare_ties(u.deltas(), torch.tensor(w), 0.6, election))


def test_dare_linear_and_dare_ties_use_the_same_masks():
    u = random_updates(T=1, d_out=10, d_in=8, seed=7)
    lin = run("dare_linear", u, seed=3, density=0.5, **{"lambda": 1.0}).delta
    tie = run("dare_ties", u, seed=3, density=0.5, **{"lambda": 1.0}).delta
    assert_close(lin, tie)  # one task: TIES disjoint mean is the identity on the dropped τ
    assert 0.2 < float((lin != 0).float().mean()) < 0.8


@pytest.mark.parametrize("key", ["dare_linear", "dare_ties"])
def test_dare_is_deterministic_given_the_seed(key):
    u = random_updates(T=3, d_out=10, d_in=8, seed=8)
    a, b = run(key, u, seed=5).delta, run(key, u, seed=5).delta
    assert torch.equal(a, b)
    assert not torch.equal(a, run(key, u, seed=6).delta)
    assert torch.equal(run(key, u).delta, run(key, u).delta)  # no generator: fixed default seed


# ---------------------------------------------------------------- λ applied last (`osrm select` merges once per density)

@pytest.mark.parametrize("key", sorted(k for k, m in METHODS.items() if m.scaled_last))
def test_scaled_last_methods_are_their_lambda1_merge_times_lambda_bit_identical(key):
    """MergeMethod.scaled_last: Δ(λ) == Δ(1).mul(λ) exactly (not approximately), so select's λ grid may scale."""
    u = random_updates(T=4, d_out=200, d_in=384, ranks=[2, 3, 1, 2])  # 200 x 384: two row blocks
    for density in (0.2, 1.0):
        for variant in ("peft", "mergekit"):
            base = run(key, u, seed=7, density=density, variant=variant, weights=[1.0, 0.5, 2.0, 1.0], **{"lambda": 1.0}).delta
            for lam in (0.3, 1.1, 2.0):
                res = run(key, u, seed=7, density=density, variant=variant, weights=[1.0, 0.5, 2.0, 1.0], **{"lambda": lam})
                assert torch.equal(res.delta, base.mul(lam)), (density, variant, lam)
