"""Data-parallel evaluation: two gloo ranks split the examples, rank 0 gathers the logits and writes."""

import json

import torch
from safetensors.torch import load_file

from tests.distributed.zero_lib import TASK, dropout_free_backbone, torchrun, write_config


def test_two_rank_evaluate_equals_one_rank(cli, tmp_path):
    backbone = dropout_free_backbone(tmp_path / "bb")
    cfg = write_config(tmp_path / "run", backbone, 16, data={"max_train": 16, "max_eval": 15})  # 15 rows: blocks 8 + 7
    cli("finetune", "-c", cfg, "--task", TASK, "--arm", "lora")
    out = cfg.parent / "runs/eval/seed42/individual/lora"
    cli("evaluate", "-c", cfg, "--model", "lora/individual")
    ref_logits, ref = load_file(out / "logits.safetensors")[TASK], json.loads((out / "metrics.json").read_text())
    res = torchrun(2, "evaluate", "--config", cfg, "--model", "lora/individual")
    assert res.stdout.count("evaluate lora/individual: average") == 1, "only rank 0 writes"
    got_logits, got = load_file(out / "logits.safetensors")[TASK], json.loads((out / "metrics.json").read_text())
    assert got_logits.shape[0] == 15
    torch.testing.assert_close(got_logits, ref_logits, atol=1e-5, rtol=1e-4)
    assert got["tasks"] == ref["tasks"]
