"""All six stages chained on a tiny random BERT: extract -> subspace -> finetune -> convert -> merge -> evaluate -> report."""

import json

import torch
from safetensors.torch import load_file

from tests.conftest import TINY_TASKS


def test_chain(cli, tiny_config):
    root = tiny_config.parent / "runs"
    for t in TINY_TASKS:
        cli("extract-features", "-c", tiny_config, "--task", t)
    for t in TINY_TASKS:
        cli("build-subspace", "-c", tiny_config, "--task", t)
    for init in ("gaussian", "osrm"):
        for t in TINY_TASKS:
            cli("finetune", "-c", tiny_config, "--task", t, "--init", init)
    # OSRM adapters keep A in the subspace's span up to training drift; record says how far A moved
    train = json.loads((root / "adapters/osrm" / TINY_TASKS[0] / "training.json").read_text())
    assert 0 < train["a_drift_mean"] < 1.5 and len(train["history"]) == 1
    out = tiny_config.parent / "converted"
    cli("convert", "project", "-c", tiny_config, "--task", TINY_TASKS[0], "--adapter", root / "adapters/gaussian" / TINY_TASKS[0], "--out", out)
    sub = load_file(root / "subspaces" / TINY_TASKS[0] / "subspace.safetensors")
    conv = load_file(out / "adapter_model.safetensors")
    name = next(iter(sub))
    torch.testing.assert_close(conv[f"base_model.model.{name}.lora_A.weight"], sub[name])
    assert any("classifier" in k for k in conv)  # the head survives conversion
    for init in ("gaussian", "osrm"):
        for method in ("weight_average", "task_arithmetic", "ties"):
            cli("merge", "-c", tiny_config, "--init", init, "--method", method)
    for model in ["base"] + [f"{i}/{m}" for i in ("gaussian", "osrm") for m in ("individual", "weight_average", "task_arithmetic", "ties")]:
        cli("evaluate", "-c", tiny_config, "--model", model)
    res = cli("report", "-c", tiny_config)
    report = (root / "report/report.md").read_text()
    assert "LoRA+OSRM · ties" in report and "pretrained" in report
    rows = json.loads((root / "report/metrics.json").read_text())["rows"]
    assert len(rows) == 1 + 2 * 4
    assert (root / "report/merge.png").stat().st_size > 1000
    assert "normalised" in res.output
