"""The MPNet backbone (configs/backbones/mpnet.yaml's format) end to end on a tiny stand-in split across three
fake installed distributions: extract-features -> build-subspace -> finetune (OSRM init) through the CLI, the
`parts:` source unpacked once into the cache and the adapters on MPNet's attn.q / attn.v."""

import yaml
from safetensors.torch import load_file

from tests.conftest import tiny_pipeline
from tests.families.mpnet_standin import install_parts, save_tiny_mpnet, standin_spec, zip_bytes

TASKS = ["movie_sentiment", "sentiment_score"]  # a classification and a regression task


def test_mpnet_standin_extract_subspace_finetune(cli, tmp_path, monkeypatch):
    save_tiny_mpnet(tmp_path / "model")
    (tmp_path / "site").mkdir()
    install_parts(tmp_path / "site", zip_bytes(tmp_path / "model"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("OSRM_CACHE_DIR", str(tmp_path / "cache"))
    backbone = tmp_path / "tiny-mpnet.yaml"
    backbone.write_text(yaml.safe_dump(standin_spec()))
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(tiny_pipeline(tmp_path / "runs", backbone, tasks=TASKS,
                                                   data={"max_train": 32, "max_eval": 16})))
    for t in TASKS:
        cli("extract-features", "-c", config, "--task", t)
    cli("build-subspace", "-c", config, "--task", TASKS[0])
    cli("finetune", "-c", config, "--task", TASKS[0], "--arm", "osrm")
    assert len(list((tmp_path / "cache" / "parts").iterdir())) == 1  # unpacked once, reused by every stage
    root = tmp_path / "runs"
    sub = load_file(root / "subspaces/seed42/osrm" / TASKS[0] / "subspace.safetensors")
    assert len(sub) == 2 * 2 and all(".attention.attn." in k for k in sub)  # q and v of 2 layers
    adapter = load_file(root / "adapters/seed42/osrm" / TASKS[0] / "adapter_model.safetensors")
    assert any(".attn.q.lora_A" in k for k in adapter) and any(".attn.v.lora_B" in k for k in adapter)
    assert any(".classifier." in k for k in adapter), "the task head is saved with the adapter"
