"""Feature capture: masked means and Grams equal a naive loop over real tokens."""

import torch
from torch import nn

from osrm_core.features import batch_stats, capture, target_module_names


def test_batch_stats_masks_padding():
    x = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    rows, gram, count = batch_stats(x, mask, include_padding=False)
    for b in range(3):
        real = x[b, mask[b].bool()]
        torch.testing.assert_close(rows[b], real.mean(0))
    tokens = x[mask.bool()].double()
    torch.testing.assert_close(gram, tokens.T @ tokens)
    assert count == 9
    rows_pad, _, _ = batch_stats(x, mask, include_padding=True)
    torch.testing.assert_close(rows_pad, x.mean(1))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.value, self.out = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.query(x) + self.value(x))


def test_capture_shares_identical_inputs():
    m = Block()
    names = target_module_names(m, ["query", "value", "out"])
    assert names == ["query", "value", "out"]
    x = torch.randn(2, 3, 4)
    mask = torch.ones(2, 3)
    with capture(m, names) as cap:
        cap.new_batch(mask)
        m(x)
    assert cap.alias == {"query": "query", "value": "query", "out": "out"}
    owned = cap.canonical_stats()
    assert set(owned) == {"query", "out"}
    torch.testing.assert_close(owned["query"].sample_means(), x.mean(1))
    assert not m.query._forward_pre_hooks  # hooks removed


def test_length_grouped_order():
    from osrm_core.batching import length_grouped

    lengths = [(i * 37) % 101 for i in range(203)]
    order = length_grouped(lengths, 8, seed=1, epoch=0, group=5)
    assert sorted(order) == list(range(203))  # a permutation
    assert order == length_grouped(lengths, 8, seed=1, epoch=0, group=5)  # deterministic
    assert order != length_grouped(lengths, 8, seed=1, epoch=1, group=5)  # reshuffled each epoch
    batches = [order[i:i + 8] for i in range(0, 203, 8)]
    assert all(len(b) == 8 for b in batches[:-1])
    spread = sum(max(lengths[j] for j in b) - min(lengths[j] for j in b) for b in batches) / len(batches)
    assert spread < 40  # random batches span ~the whole 0..100 range
