"""lora.freeze under DeepSpeed ZeRO: the tensors gathered for the saved adapter hold both LoRA factors (a frozen
A or B too, which the adapter's training.json and PEFT's loader need), as the plain torch path saves them."""

import pytest
from transformers import BertConfig, BertForSequenceClassification

from osrm_core import lora
from osrm_core.train import gathered_trainable


@pytest.mark.parametrize("freeze", ["A", "B"])
def test_gathered_state_keeps_the_frozen_factor(freeze):
    body = BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                    intermediate_size=32, max_position_embeddings=32, num_labels=2))
    model = lora.attach_lora(body, ["query", "value"], ["classifier"], rank=2, alpha=4)
    lora.set_freeze(model, freeze)
    got = gathered_trainable(model, stage=2)  # ZeRO-2: no partitions to gather, the same selection as ZeRO-3
    assert any(f".lora_{freeze}." in k for k in got), f"lora_{freeze} is missing"
    assert got.keys() == lora.trainable_state(model).keys()
