"""Backbone specs: every shipped YAML parses; hub ids fail offline with one line that suggests a local path."""


import pytest

from osrm_core.backbones import configs_dir, load_spec
from osrm_core.errors import OsrmError

NAMES = sorted(p.stem for p in (configs_dir() / "backbones").glob("*.yaml"))


@pytest.mark.parametrize("name", NAMES)
def test_shipped_specs_parse(name):
    spec = load_spec(name)
    assert set("qv") <= set(spec.targets) and not spec.trust_remote_code


def test_paper_backbones_are_listed():
    assert {"minilm", "roberta-large", "t5-large", "llama-3.2-1b", "llama-3-8b"} <= set(NAMES)


def test_hub_id_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
    from osrm_core.models import load_tokenizer

    with pytest.raises(OsrmError) as err:
        load_tokenizer(load_spec("roberta-large"))
    msg = str(err.value)
    assert "\n" not in msg and "roberta-large" in msg and "local folder" in msg
