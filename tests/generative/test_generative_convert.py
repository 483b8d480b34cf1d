"""`osrm convert project` brings head-less CAUSAL_LM adapters trained by PEFT itself (a few AdamW steps with
peft.get_peft_model on the tiny Llama, saved with save_pretrained; rsLoRA, rank_pattern/alpha_pattern) into an
arm: imported as they are, each module's update equals PEFT's merge_and_unload() delta and plain PEFT reloads
it; projected, it is that delta times A_tᵀA_t; a generative adapter saving other tensors is one line."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from stages.io.adapters import Adapter
from tests.generative.tiny_lm import write_project
from tests.peft_reference import merged_delta

#: each task's adapter as someone else trained it (the arm's lora.blocks: q, v)
CONFIGS = {"sentiment": {"r": 4, "lora_alpha": 8, "use_rslora": True},
           "topic": {"r": 4, "lora_alpha": 8, "rank_pattern": {"v_proj": 2}, "alpha_pattern": {"v_proj": 6}},
           "colour": {"r": 2, "lora_alpha": 2}}


def _peft_trained(run, task: str, cfg: dict, **extra):
    """A PEFT CAUSAL_LM LoRA after 3 AdamW steps on the task's training batches (target tokens only)."""
    from peft import LoraConfig, get_peft_model

    from osrm_core.models import load_causal_lm
    from osrm_core.tasks.kinds import kind_of

    spec, data = run.load_task(task)
    torch.manual_seed(len(task))
    model = get_peft_model(load_causal_lm(run.spec), LoraConfig(task_type="CAUSAL_LM", target_modules=["q_proj", "v_proj"],
                                                                 **cfg, **extra))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.02)
    batches = kind_of(spec).train_batches(run.tokenizer, data["train"], spec, 8, 24, list(range(24)))
    for inputs, labels in batches:
        model(**inputs, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(cli, config, root, {task: PEFT's merged delta}): PEFT-trained adapters under root/peft/<task>, a map file."""
    from osrm_pipeline.run import open_run
    from tests.conftest import Cli

    root = tmp_path_factory.mktemp("gen-convert")
    config = write_project(root, arms={"lora": {"init": "gaussian"}, "osrm": {"init": "osrm"}},
                           merge={"methods": {"task_arithmetic": {"lambda": 1.0}}})
    run, refs = open_run(config), {}
    for task, cfg in CONFIGS.items():
        model = _peft_trained(run, task, cfg)
        model.save_pretrained(root / "peft" / task)
        refs[task] = merged_delta(model)
    (root / "map.yaml").write_text(yaml.safe_dump({t: f"peft/{t}" for t in CONFIGS}))
    return Cli(), config, root, refs


def test_import_equals_peft_merge_and_unload(trained):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cli, config, root, refs = trained
    cli("convert", "project", "-c", config, "--arm", "lora", "--map", root / "map.yaml", "--no-project")
    for task, ref in refs.items():
        folder = root / "runs/adapters/seed42/lora" / task
        cfg = json.loads((folder / "adapter_config.json").read_text())
        assert cfg["task_type"] == "CAUSAL_LM" and not cfg["modules_to_save"]
        imported = Adapter(folder)
        assert imported.head() == {} and set(imported.modules) == set(ref)
        assert any(d.abs().max() > 1e-4 for d in ref.values())  # the steps moved the weights
        for m, d in ref.items():
            torch.testing.assert_close(imported.delta(m), d, atol=1e-6, rtol=0)
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(root / "model"), folder)
        assert type(reloaded).__name__ == "PeftModelForCausalLM"
        for m, d in merged_delta(reloaded).items():  # PEFT reads our rewritten config (rslora, patterns) alike
            torch.testing.assert_close(d, ref[m], atol=1e-6, rtol=0)
    assert Adapter(root / "runs/adapters/seed42/lora/topic").factors("model.layers.0.self_attn.v_proj")[0].shape[0] == 2
    cli("merge", "-c", config, "--arm", "lora", "--method", "task_arithmetic")  # the imported arm merges as its own
    merged = Adapter(root / "runs/merged/seed42/lora/task_arithmetic")
    q0 = "model.layers.0.self_attn.q_proj"
    torch.testing.assert_close(merged.delta(q0), sum(r[q0] for r in refs.values()), atol=1e-6, rtol=0)


def test_projection_into_the_osrm_subspace(trained):
    cli, config, root, refs = trained
    cli("extract-features", "-c", config, "--task", "all")
    cli("build-subspace", "-c", config, "--arm", "osrm")
    cli("convert", "project", "-c", config, "--arm", "osrm", "--map", root / "map.yaml")
    for task, ref in refs.items():
        folder = root / "runs/adapters/seed42/osrm" / task
        sub = load_file(root / "runs/subspaces/seed42/osrm" / task / "subspace.safetensors")
        converted = Adapter(folder)
        assert converted.config["task_type"] == "CAUSAL_LM" and json.loads((folder / "manifest.json").read_text())["init"] == "converted"
        for m, d in ref.items():
            a_t = sub[m].float()
            torch.testing.assert_close(converted.delta(m), d @ a_t.T @ a_t, atol=1e-5, rtol=0)


def test_a_generative_adapter_with_modules_to_save_is_one_line(trained, tmp_path):
    from osrm_pipeline.run import open_run

    cli, config, root, _ = trained
    _peft_trained(open_run(config), "colour", CONFIGS["colour"], modules_to_save=["lm_head"]).save_pretrained(tmp_path / "a")
    (tmp_path / "map.yaml").write_text(yaml.safe_dump({"colour": str(tmp_path / "a")}))
    res = cli("convert", "project", "-c", config, "--arm", "lora", "--map", tmp_path / "map.yaml", "--no-project", ok=False)
    assert res.exit_code == 2 and "lm_head" in res.output and "is generative" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1


def test_fold_and_dense_project_of_a_causal_lm(trained, tmp_path):
    """`convert fold` of a head-less CAUSAL_LM adapter writes the causal LM with W0 + PEFT's delta (no head); that
    dense checkpoint projects (`convert project --dense`) into a CAUSAL_LM adapter whose update is delta A_tᵀA_t."""
    from transformers import AutoModelForCausalLM

    cli, config, root, refs = trained
    res = cli("convert", "fold", "-c", config, "--adapter", root / "peft/sentiment", "--out", tmp_path / "fold")
    assert "LlamaForCausalLM" in res.output and json.loads((tmp_path / "fold/manifest.json").read_text())["num_labels"] == 0
    folded, w0 = (dict(AutoModelForCausalLM.from_pretrained(p).named_modules()) for p in (tmp_path / "fold", root / "model"))
    for m, d in refs["sentiment"].items():
        torch.testing.assert_close(folded[m].weight - w0[m].weight, d, atol=1e-6, rtol=0)
    cli("extract-features", "-c", config, "--task", "all")
    cli("build-subspace", "-c", config, "--arm", "osrm")
    cli("convert", "project", "-c", config, "--task", "sentiment", "--arm", "osrm", "--dense", tmp_path / "fold",
        "--out", tmp_path / "conv")
    conv = Adapter(tmp_path / "conv")
    assert conv.config["task_type"] == "CAUSAL_LM" and not conv.config["modules_to_save"] and conv.head() == {}
    sub = load_file(root / "runs/subspaces/seed42/osrm/sentiment/subspace.safetensors")
    for m, d in refs["sentiment"].items():
        torch.testing.assert_close(conv.delta(m), d @ sub[m].float().T @ sub[m].float(), atol=1e-5, rtol=0)
