"""Properties every method must have: one adapter merges to itself (where that is true), factor
and dense outputs agree, results are deterministic given the seed, outputs are float32 d_out × d_in."""

from __future__ import annotations

import pytest
import torch
from merge_testlib import assert_close, random_updates

from osrm_core.merge import METHODS

# Parameters under which merging ONE adapter must return it unchanged (weight 1, no trim/drop).
IDENTITY = {
    "weight_average": {},
    "task_arithmetic": {"lambda": 1.0},
    "ties": {"density": 1.0, "lambda": 1.0},
    "dare_linear": {"density": 1.0, "lambda": 1.0},
    "dare_ties": {"density": 1.0, "lambda": 1.0},
    "magnitude_prune": {"density": 1.0, "lambda": 1.0},
    "fisher": {},
    "regmean": {"ridge": 0.0},
    "emr": {},
    "knots": {"density": 1.0, "lambda": 1.0},
    "tsv_m": {},
}
# Methods for which the single-adapter identity is false by design.
NOT_IDENTITY = {"iso_c": "flattens the spectrum: σ_i → mean σ (identity only for rank-1 updates)"}


def run(key, updates, seed=0, **params):
    m = METHODS[key]
    return m.fn(updates, m.params.model_validate(params), torch.Generator().manual_seed(seed))


def with_everything(**kw):
    return random_updates(grams=True, fishers=True, base=True, **kw)


def test_every_method_is_classified_for_the_single_adapter_property():
    assert set(IDENTITY) | set(NOT_IDENTITY) == set(METHODS)
    assert not set(IDENTITY) & set(NOT_IDENTITY)


@pytest.mark.parametrize("key", sorted(IDENTITY))
def test_single_adapter_with_weight_one_is_reproduced(key):
    u = with_everything(T=1, ranks=3, seed=1)
    res = run(key, u, **IDENTITY[key])
    assert_close(res.delta, u.delta(0), rtol=1e-4, atol=1e-5)
    if res.per_task is not None:
        assert_close(res.per_task[0], u.delta(0), rtol=1e-4, atol=1e-5)


def test_iso_c_single_adapter_exception():
    u = random_updates(T=1, ranks=3, seed=1)
    assert not torch.allclose(run("iso_c", u).delta, u.delta(0), rtol=1e-3, atol=1e-3)
    u1 = random_updates(T=1, ranks=1, seed=1)
    assert_close(run("iso_c", u1).delta, u1.delta(0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key", sorted(METHODS))
def test_output_shapes_and_factor_dense_agreement(key):
    u = with_everything(T=3, ranks=[1, 2, 3], seed=2)
    res = run(key, u)
    assert res.delta.shape == u.shape and res.delta.dtype == torch.float32
    assert torch.isfinite(res.delta).all()
    if METHODS[key].low_rank:
        A, B = res.factors
        assert A.shape[1] == u.shape[1] and B.shape[0] == u.shape[0] and A.shape[0] == B.shape[1]
        assert A.shape[0] <= 6  # rank ≤ Σ r_t
        assert_close(B @ A, res.delta)
    else:
        assert res.factors is None
    assert (res.per_task is not None) == METHODS[key].per_task


@pytest.mark.parametrize("key", sorted(METHODS))
def test_deterministic_given_the_seed(key):
    u = with_everything(T=3, seed=3)
    assert torch.equal(run(key, u, seed=7).delta, run(key, u, seed=7).delta)


@pytest.mark.parametrize("key", sorted(METHODS))
def test_inputs_are_not_modified(key):
    u = with_everything(T=2, seed=4)
    before = [t.clone() for t in [*u.A, *u.B, *u.grams, *u.fishers, u.base]]
    run(key, u)
    after = [*u.A, *u.B, *u.grams, *u.fishers, u.base]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("key", ["task_arithmetic", "ties", "knots", "tsv_m", "iso_c", "regmean", "emr"])
def test_permuting_tasks_does_not_change_the_merge(key):
    u = with_everything(T=3, seed=5)
    order = [2, 0, 1]
    v = type(u)(A=[u.A[i] for i in order], B=[u.B[i] for i in order], scale=[u.scale[i] for i in order],
                grams=[u.grams[i] for i in order], fishers=[u.fishers[i] for i in order], base=u.base,
                counts=[u.counts[i] for i in order])
    assert_close(run(key, v).delta, run(key, u).delta, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key", sorted(METHODS))
def test_untrained_adapters_are_handled(key):
    """B = 0 is LoRA's initial state: such a task contributes nothing, and all-zero inputs merge to 0."""
    u = with_everything(T=3, seed=6)
    u.B[1].zero_()
    res = run(key, u)
    assert torch.isfinite(res.delta).all()
    for b in u.B:
        b.zero_()
    res = run(key, u)
    assert torch.equal(res.delta, torch.zeros(u.shape))
    if res.per_task is not None:
        assert all(torch.equal(p, torch.zeros(u.shape)) for p in res.per_task)
