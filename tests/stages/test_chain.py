"""All six stages chained on a tiny random BERT: extract -> subspace -> finetune -> convert -> merge -> evaluate -> report."""

import json

import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import TINY_TASKS, run_upstream


def test_chain(cli, tiny_config):
    root = tiny_config.parent / "runs"
    run_upstream(cli, tiny_config, TINY_TASKS)
    # OSRM adapters keep A in the subspace's span up to training drift; record says how far A moved
    train = json.loads((root / "adapters/seed42/osrm" / TINY_TASKS[0] / "training.json").read_text())
    assert 0 < train["a_drift_mean"] < 1.5 and len(train["history"]) == 1
    out = tiny_config.parent / "converted"
    cli("convert", "project", "-c", tiny_config, "--task", TINY_TASKS[0], "--adapter", root / "adapters/seed42/lora" / TINY_TASKS[0], "--out", out)
    sub = load_file(root / "subspaces/seed42/osrm" / TINY_TASKS[0] / "subspace.safetensors")
    conv = load_file(out / "adapter_model.safetensors")
    name = next(iter(sub))
    torch.testing.assert_close(conv[f"base_model.model.{name}.lora_A.weight"], sub[name])
    assert any("classifier" in k for k in conv)  # the head survives conversion
    for init in ("lora", "osrm"):
        for method in ("weight_average", "task_arithmetic", "ties"):
            cli("merge", "-c", tiny_config, "--arm", init, "--method", method)
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["evaluate"]["split"] = "test"  # the report scores test; parameters are chosen on validation
    test_config = tiny_config.parent / "test.yaml"
    test_config.write_text(yaml.safe_dump(cfg))
    cli("evaluate", "-c", test_config, "--model", "base", "--model", "lora/individual", "--model", "osrm/individual")
    cli("evaluate", "-c", test_config, "--model", "lora/merges", "--model", "osrm/merges")  # every merge.methods key
    for arm in ("lora", "osrm"):
        cli("select", "-c", test_config, "--arm", arm)
    res = cli("report", "-c", test_config)
    report = (root / "report/report.md").read_text()
    assert "| ties | LoRA+OSRM |" in report and "pretrained" in report
    metrics = json.loads((root / "report/metrics.json").read_text())
    assert {"weight_average", "task_arithmetic", "ties", "individual"} <= set(metrics["osrm"])  # 1 base + 2 arms x (3 + 1)
    assert "average" in metrics["base"] and "average" in metrics["osrm"]["ties"]
    assert (root / "report/merge.png").stat().st_size > 1000
    assert "normalised" in res.output


def test_osrm_adapter_loads_with_plain_peft(cli, tiny_config):
    """An OSRM adapter is a plain PEFT adapter: PeftModel.from_pretrained reproduces evaluate's predictions."""
    from peft import PeftModel
    from safetensors.torch import load_file as load

    from osrm_core.batching import iterate
    from osrm_core.models import load_classifier, load_tokenizer
    from osrm_core.train import predict
    from osrm_pipeline.backbone_registry import load_spec
    from osrm_pipeline.suites import load_task

    root = tiny_config.parent / "runs"
    for t in TINY_TASKS:
        cli("extract-features", "-c", tiny_config, "--task", t)
    task = TINY_TASKS[1]
    cli("build-subspace", "-c", tiny_config, "--task", task)
    cli("finetune", "-c", tiny_config, "--task", task, "--arm", "osrm")
    import yaml

    cfg = yaml.safe_load(tiny_config.read_text())
    one = tiny_config.parent / "one-task.yaml"  # same workdir, only this task: evaluate just its adapter
    one.write_text(yaml.safe_dump({**cfg, "tasks": [task]}))
    cli("evaluate", "-c", one, "--model", "osrm/individual")
    spec = load_spec(cfg["backbone"])
    tspec, data = load_task("default", task, max_train=48, max_eval=24)
    model = PeftModel.from_pretrained(load_classifier(spec, tspec.num_labels), root / "adapters/seed42/osrm" / task)
    tok = load_tokenizer(spec)
    logits = predict(model, iterate(tok, data["validation"], tspec.text_fields, 8, 32))  # evaluate.split: validation
    ours = load(root / "eval/seed42/individual/osrm/logits.safetensors")[task]
    torch.testing.assert_close(logits, ours, atol=1e-4, rtol=1e-4)


def test_osrm_init_starts_at_base_model(cli, tiny_config):
    """With A <- A_t and B <- 0 the LoRA model's outputs equal the base model's at step 0."""
    import yaml

    from osrm_core.batching import iterate
    from osrm_core.models import load_classifier, load_tokenizer
    from osrm_core.train import predict
    from osrm_pipeline.run import open_run, seed_everything
    from stages.finetune import build_model

    for t in TINY_TASKS:
        cli("extract-features", "-c", tiny_config, "--task", t)
    cli("build-subspace", "-c", tiny_config, "--task", TINY_TASKS[0])
    run = open_run(tiny_config, arm="osrm")
    spec, data = run.load_task(TINY_TASKS[0])
    model, _ = build_model(run, TINY_TASKS[0], spec)
    seed_everything(run.cfg.seed)
    base = load_classifier(run.spec, spec.num_labels)
    tok = load_tokenizer(run.spec)
    batches = lambda: iterate(tok, data["validation"], spec.text_fields, 8, 32)  # noqa: E731
    torch.testing.assert_close(predict(model, batches()), predict(base, batches()), atol=1e-6, rtol=0)
    from osrm_core.lora import lora_layers

    layer = next(iter(lora_layers(model).values()))
    assert layer.lora_B["default"].weight.abs().sum() == 0 and layer.lora_A["default"].weight.abs().sum() > 0
