"""Shared driver: one model family end to end on a tiny random model (extract -> subspace -> finetune both inits -> merge -> evaluate)."""

import json

import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import run_upstream, save_tiny, tiny_pipeline

TASKS = ["movie_sentiment", "sentiment_score"]  # a classification and a regression task
HEADS = {"encoder": "classifier", "decoder": "score", "encoder-decoder": "classification_head"}


def _config(tmp_path, family: str):
    spec = save_tiny(tmp_path / "model", family)
    backbone = tmp_path / f"tiny-{family}.yaml"
    backbone.write_text(yaml.safe_dump(spec))
    cfg = tiny_pipeline(tmp_path / "runs", backbone, tasks=TASKS, data={"max_train": 32, "max_eval": 16},
                        merge={"methods": {"task_arithmetic": {"lambda": 0.5}}})
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp_path / "runs"


def run_family(cli, tmp_path, family: str) -> None:
    config, root = _config(tmp_path, family)
    run_upstream(cli, config, TASKS)
    for init in ("lora", "osrm"):
        cli("merge", "-c", config, "--arm", init, "--method", "task_arithmetic")
    adapter = load_file(root / "adapters/seed42/osrm" / TASKS[0] / "adapter_model.safetensors")
    assert any(f".{HEADS[family]}." in k for k in adapter), "the task head is saved with the adapter"
    sub = load_file(root / "subspaces/seed42/osrm" / TASKS[0] / "subspace.safetensors")
    n_layers = 2 * (2 if family == "encoder-decoder" else 1)  # T5: encoder self + decoder self + cross attention
    assert len(sub) == 2 * n_layers + (2 * 2 if family == "encoder-decoder" else 0)
    for model in ("base", "osrm/individual", "osrm/task_arithmetic"):
        cli("evaluate", "-c", config, "--model", model)
    metrics = json.loads((root / "eval/seed42/individual/osrm/metrics.json").read_text())
    assert set(metrics["tasks"]) == set(TASKS) and all(torch.isfinite(torch.tensor(m["score"])) for m in metrics["tasks"].values())
