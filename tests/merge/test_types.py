"""ModuleUpdates helpers and MergeResult's lazy delta."""

from __future__ import annotations

import torch
from merge_testlib import assert_close, random_updates

from osrm_core.merge.types import MergeResult


def test_deltas_are_scaled_products():
    u = random_updates(T=3, ranks=[1, 2, 3])
    for t, d in enumerate(u.deltas()):
        assert d.dtype == torch.float32
        assert_close(d, u.scale[t] * u.B[t] @ u.A[t])
    assert_close(u.stacked_deltas(), torch.stack(u.deltas()))
    assert u.shape == (9, 7) and u.num_tasks == 3


def test_concat_factors_give_the_weighted_sum():
    u = random_updates(T=3, ranks=[1, 2, 3])
    A, B = u.concat_factors([0.5, -1.0, 2.0])
    assert A.shape == (6, 7) and B.shape == (9, 6)
    expected = 0.5 * u.delta(0) - u.delta(1) + 2.0 * u.delta(2)
    assert_close(B @ A, expected)


def test_merge_result_delta_is_lazy_from_factors():
    A, B = torch.randn(2, 4), torch.randn(3, 2)
    res = MergeResult(factors=(A, B))
    assert res.__dict__.get("_delta") is None  # not computed until asked
    assert_close(res.delta, B @ A)
    assert res.delta is res.delta  # cached
    dense = torch.zeros(3, 4)
    assert MergeResult(delta=dense).delta is dense
    assert MergeResult().delta is None
