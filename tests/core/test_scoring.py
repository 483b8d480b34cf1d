"""ClassifierPool: reusing one model gives exactly what a fresh model with add_deltas + load_head gives."""

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from osrm_core.apply import add_deltas, load_head
from osrm_core.errors import OsrmError
from osrm_core.scoring import ClassifierPool

CFG = dict(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
Q, V = "bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.1.attention.self.value"


def fresh(num_labels: int):
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(num_labels=num_labels, **CFG)).eval()


def head(num_labels: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"classifier.weight": torch.randn(num_labels, 16, generator=g), "classifier.bias": torch.randn(num_labels, generator=g)}


def reference(num_labels, deltas, h, ids):
    model = fresh(num_labels)
    add_deltas(model, deltas)
    load_head(model, h)
    return model(input_ids=ids).logits


@torch.no_grad()
def test_pool_matches_fresh_model_across_switches():
    loads = []
    pool = ClassifierPool(lambda n: loads.append(n) or fresh(n))
    ids = torch.randint(0, 100, (3, 7))
    g = torch.Generator().manual_seed(1)
    d1 = {Q: torch.randn(16, 16, generator=g), V: torch.randn(16, 16, generator=g)}
    d2 = {Q: torch.randn(16, 16, generator=g)}  # V must go back to W0
    calls = [(2, d1, head(2, 0)), (3, d2, head(3, 1)), (2, d2, head(2, 2)), (2, {}, head(2, 3)), (2, d1, head(2, 4))]
    for n, d, h in calls:
        got = pool.get(n, d, h)(input_ids=ids).logits
        assert torch.equal(got, reference(n, d, h, ids))
    assert loads == [2, 3] and len(pool) == 2  # one load per label count


def test_pool_rejects_updates_for_another_model():
    pool = ClassifierPool(fresh)
    with pytest.raises(OsrmError, match="does not exist"):
        pool.get(2, {"nope.query": torch.zeros(16, 16)}, head(2, 0))
    with pytest.raises(OsrmError, match="weight is"):
        pool.get(2, {Q: torch.zeros(8, 16)}, head(2, 0))
