"""The fast magnitude trim (sampled bracket + exact kthvalue) equals a full top-k, ties included."""

from __future__ import annotations

import pytest
import torch

from osrm_core.merge.sparsify import kth_largest_count, magnitude_trim_


@pytest.mark.parametrize("n", [7, 1000, 300_000])
@pytest.mark.parametrize("density", [0.001, 0.2, 0.9])
def test_kth_largest_and_trim_match_topk(n, density):
    x = torch.randn(n, generator=torch.Generator().manual_seed(n))
    k = int(density * n)
    if k == 0:
        assert not magnitude_trim_(x.clone(), density).any()
        return
    assert kth_largest_count(x.abs(), k)[0] == torch.topk(x.abs(), k).values[-1]
    kept = magnitude_trim_(x.clone(), density) != 0
    expected = torch.zeros(n, dtype=torch.bool).index_fill_(0, torch.topk(x.abs(), k).indices, True)
    assert torch.equal(kept, expected)


def test_ties_at_the_threshold_keep_exactly_k_lowest_indices_first():
    x = torch.tensor([1.0, -1.0, 1.0, 3.0, 1.0, 0.5])
    out = magnitude_trim_(x.clone(), 0.5)  # k = 3: the 3.0 and the first two of the tied 1.0s
    assert out.tolist() == [1.0, -1.0, 0.0, 3.0, 0.0, 0.0]


def test_bracket_miss_falls_back_to_exact():
    x = torch.cat([torch.zeros(400_000), torch.ones(10)])  # heavy ties: the sampled bracket is degenerate
    assert kth_largest_count(x, 5)[0] == 1.0 and kth_largest_count(x, 20)[0] == 0.0
    assert int(torch.count_nonzero(magnitude_trim_(x.clone() + 0, 20 / x.numel()))) == 10
