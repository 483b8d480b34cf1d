"""Backbone specs: every shipped YAML parses; hub ids fail offline with one line that suggests a local path."""


import pytest

from osrm_core.errors import OsrmError
from osrm_pipeline.backbone_registry import load_spec
from osrm_pipeline.config_dirs import configs_dir

NAMES = sorted(p.stem for p in (configs_dir() / "backbones").glob("*.yaml"))


@pytest.mark.parametrize("name", NAMES)
def test_shipped_specs_parse(name):
    spec = load_spec(name)
    assert set("qv") <= set(spec.targets) and not spec.trust_remote_code


def test_paper_backbones_are_listed():
    assert {"minilm", "roberta-large", "t5-large", "llama-3.2-1b", "llama-3-8b", "mpnet"} <= set(NAMES)


def test_hub_id_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
    from osrm_core.models import load_tokenizer

    with pytest.raises(OsrmError) as err:
        load_tokenizer(load_spec("roberta-large"))
    msg = str(err.value)
    assert "\n" not in msg and "roberta-large" in msg and "local folder" in msg


# --- backbones given directly as a model folder or a hub id: targets inferred from model_type ---

import torch.nn as nn  # noqa: E402
import transformers as tf  # noqa: E402
import yaml  # noqa: E402

from osrm_core.backbones import TARGETS_BY_MODEL_TYPE  # noqa: E402
from osrm_core.features import target_module_names  # noqa: E402

_ENC = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
_DEC = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            intermediate_size=32, pad_token_id=0)
TINY = {  # config, family, attention modules per block letter
    "bert": (tf.BertConfig(**_ENC), "encoder", 2),
    "roberta": (tf.RobertaConfig(**_ENC), "encoder", 2),
    "deberta-v2": (tf.DebertaV2Config(**_ENC), "encoder", 2),
    "mpnet": (tf.MPNetConfig(**_ENC), "encoder", 2),  # MPNetAttention.attn.{q,k,v,o}
    "llama": (tf.LlamaConfig(**_DEC, architectures=["LlamaForCausalLM"]), "decoder", 2),
    "mistral": (tf.MistralConfig(**_DEC), "decoder", 2),
    "qwen2": (tf.Qwen2Config(**_DEC), "decoder", 2),
    "gemma": (tf.GemmaConfig(**_DEC, head_dim=8), "decoder", 2),
    "t5": (tf.T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=2),
           "encoder-decoder", 6),  # encoder self + decoder self + cross attention
}


@pytest.mark.parametrize("model_type", sorted(TINY))
def test_targets_inferred_from_a_model_folder_match_linear_layers(tmp_path, model_type):
    config, family, per_letter = TINY[model_type]
    assert config.model_type == model_type
    config.save_pretrained(tmp_path / "model")
    spec = load_spec(str(tmp_path / "model"))
    assert spec.family == family and spec.name == "model" and set(spec.targets) == set("qkvo")
    model = tf.AutoModelForSequenceClassification.from_config(config)
    modules = dict(model.named_modules())
    for letter in "qkvo":
        names = target_module_names(model, spec.target_suffixes(letter))
        assert len(names) == per_letter, (letter, names)
        assert all(isinstance(modules[n], nn.Linear) for n in names)


def test_every_table_entry_is_tested():
    assert set(TINY) <= set(TARGETS_BY_MODEL_TYPE)
    untested = set(TARGETS_BY_MODEL_TYPE) - set(TINY)
    assert untested == {"xlm-roberta", "electra", "gemma2"}  # same module names as roberta/bert/gemma


def test_unknown_architecture_lists_its_linear_layers(tmp_path):
    tf.OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
                 word_embed_proj_dim=16).save_pretrained(tmp_path / "opt")
    with pytest.raises(OsrmError) as err:
        load_spec(str(tmp_path / "opt"))
    msg = str(err.value)
    assert "\n" not in msg and "model_type 'opt'" in msg and "targets" in msg
    assert all(f"'{n}'" in msg for n in ("self_attn.q_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1"))


def test_yaml_without_targets_infers_them_and_explicit_targets_win(tmp_path):
    TINY["bert"][0].save_pretrained(tmp_path / "model")
    (tmp_path / "inferred.yaml").write_text(yaml.safe_dump({"name": "b", "family": "encoder", "source": str(tmp_path / "model")}))
    assert load_spec(str(tmp_path / "inferred.yaml")).target_suffixes("qv") == ["query", "value"]
    explicit = {"name": "b", "family": "encoder", "source": str(tmp_path / "model"), "targets": {"q": "query", "v": "key"}}
    (tmp_path / "explicit.yaml").write_text(yaml.safe_dump(explicit))
    assert load_spec(str(tmp_path / "explicit.yaml")).target_suffixes("qv") == ["query", "key"]


def test_folder_without_config_and_unreachable_hub_id_are_one_line(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OsrmError) as err:
        load_spec(str(tmp_path / "empty"))
    assert "no config.json" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(OsrmError) as err:
        load_spec("no-such-org/no-such-model")
    msg = str(err.value)
    assert "\n" not in msg and "'no-such-org/no-such-model'" in msg and "local model folder" in msg
    with pytest.raises(OsrmError) as err:
        load_spec("no_such_backbone")
    assert "model folder" in str(err.value) and "minilm" in str(err.value)


# --- config values checked against the backbone they run on ---


def test_max_length_longer_than_the_backbone_embeds_is_one_line(cli, tmp_path, tiny_backbone):
    """The tiny BERT has 128 positions: data.max_length 256 stops before any work, naming the field and the limit."""
    from tests.conftest import tiny_pipeline

    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tiny_pipeline(tmp_path / "runs", tiny_backbone, data={"max_length": 256})))
    res = cli("extract-features", "-c", path, "--task", "movie_sentiment", ok=False)
    assert res.exit_code == 2 and "Traceback" not in res.output
    line = res.output.strip()
    assert "\n" not in line and "data.max_length is 256" in line and "at most 128 tokens" in line
    assert not (tmp_path / "runs").exists()


def test_roberta_positions_start_after_padding(tmp_path):
    from osrm_core.backbones import BackboneSpec, max_tokens

    spec = BackboneSpec(name="r", family="encoder", source=str(tmp_path), targets={"q": "query", "v": "value"})
    for model_type in ("roberta", "mpnet"):  # all-mpnet-base-v2's config.json: 514 positions, pad_token_id 1
        (tmp_path / "config.json").write_text(f'{{"model_type": "{model_type}", "max_position_embeddings": 514, "pad_token_id": 1}}')
        assert max_tokens(spec) == 512
