"""A tiny Llama runs an own JSONL generative suite through `osrm run` (every stage, arms lora + osrm): the
adapters are head-less CAUSAL_LM LoRAs, every merge method merges them, and a merged adapter loads with
plain PEFT and generates what the pipeline's own W0 + Δ model generates."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from osrm_core.merge import METHODS
from tests.generative.tiny_lm import write_project

MERGE = {"methods": {"task_arithmetic": {"lambda": 1.0}, "fisher": {}}, "sweep": {"task_arithmetic": {"lambda": [0.5, 1.0]}},
         "sweep_tasks": []}


def _config(tmp_path):
    return write_project(tmp_path, seeds=[42], arms={"lora": {"init": "gaussian"}, "osrm": {"init": "osrm"}}, merge=MERGE,
                         evaluate={"split": "test"})


def _check_adapter(folder) -> None:
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and not config.get("modules_to_save")
    assert all(".lora_A." in k or ".lora_B." in k for k in load_file(folder / "adapter_model.safetensors"))


def _peft_generates_like_the_pipeline(model_dir, merged) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from osrm_core.apply import add_deltas
    from stages.io.adapters import Adapter, individual_delta

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok(["review : the film is good sentiment :"], return_tensors="pt")
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), merged).eval()
    assert type(peft).__name__ == "PeftModelForCausalLM"
    ours = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    add_deltas(ours, individual_delta(Adapter(merged)))
    with torch.no_grad():
        assert torch.allclose(peft(**ids).logits, ours(**ids).logits, atol=1e-5)
        out = peft.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
        assert out.shape[1] > ids["input_ids"].shape[1]
        assert torch.equal(out, ours.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id))


@pytest.mark.slow
def test_generative_suite_through_osrm_run(cli, tmp_path):
    config = _config(tmp_path)
    res = cli("run", "-c", config)
    assert "pipeline finished" in res.output
    root = tmp_path / "runs"
    for arm in ("lora", "osrm"):
        for task in ("sentiment", "topic", "colour"):
            _check_adapter(root / "adapters/seed42" / arm / task)
    for method in METHODS:  # every method merges head-less adapters (fisher: the generative objectives)
        if method not in MERGE["methods"]:
            cli("merge", "-c", config, "--arm", "osrm", "--method", method)
        assert (root / "merged/seed42/osrm" / method / "manifest.json").is_file(), method
    for method in ("task_arithmetic", "knots", "tsv_m"):  # those written as one PEFT adapter
        _check_adapter(root / "merged/seed42/osrm" / method)
    _peft_generates_like_the_pipeline(tmp_path / "model", root / "merged/seed42/osrm/task_arithmetic")
    base, tuned = (load_file(root / f"eval/seed42/{m}/logits.safetensors") for m in ("base", "individual/osrm"))
    assert base["sentiment"].shape == (16, 2) and base["colour"].shape == (16, 1)  # choice log-likelihoods, row scores
    assert not torch.allclose(base["sentiment"], tuned["sentiment"])  # the adapter moved the choices' likelihoods
    metrics = json.loads((root / "eval/seed42/individual/osrm/metrics.json").read_text())
    assert set(metrics["tasks"]["sentiment"]) == {"accuracy", "f1", "score"}
    assert set(metrics["tasks"]["topic"]) == {"matthews", "score"} and set(metrics["tasks"]["colour"]) == {"token_f1", "score"}
    report = json.loads((root / "report/metrics.json").read_text())
    assert {"task_arithmetic", "fisher"} <= set(report["osrm"])
    assert json.loads((root / "eval/seed42/base/manifest.json").read_text())["upstream"] == {}  # the base opened no adapter
    for task, check in report["task_check"].items():  # the floor is the prompted base model, zero-shot
        assert check["floor"] == pytest.approx(report["base"]["tasks"][task]) and check["learnt"] in (0, 1)
    assert yaml.safe_load(config.read_text())["tasks"] == ["sentiment", "topic", "colour"]
