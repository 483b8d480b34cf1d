"""Sequence-classification pooling picks the real last token (decoder) / the EOS position (T5) under padding."""

import pytest
import torch
import yaml

from osrm_core.models import load_classifier, load_tokenizer
from osrm_pipeline.backbone_registry import load_spec
from tests.conftest import save_tiny

TEXTS = ["a rather long sentence with quite a few more tokens than the other", "short one"]


@pytest.mark.parametrize("family", ["decoder", "encoder-decoder"])
def test_padded_batch_matches_single_rows(tmp_path, family):
    spec_dict = save_tiny(tmp_path / "model", family)
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(spec_dict))
    spec = load_spec(str(path))
    tok = load_tokenizer(spec)
    torch.manual_seed(0)
    model = load_classifier(spec, 3)
    assert tok.padding_side == "right" and model.config.pad_token_id == tok.pad_token_id
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    assert "token_type_ids" not in batch and (batch["attention_mask"][1] == 0).any()
    with torch.no_grad():
        together = model(**batch).logits
        alone = torch.cat([model(**tok([t], return_tensors="pt")).logits for t in TEXTS])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
