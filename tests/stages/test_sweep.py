"""`osrm sweep run` / `osrm sweep plot` on a tiny BERT with random (untrained) PEFT adapters: fast, no fine-tuning."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tests.conftest import TINY_TASKS, tiny_pipeline


def fake_adapters(config, arm: str, seed: int) -> None:
    """Write a PEFT adapter (random B, task head) + finetune manifest per task, as `osrm finetune` would."""
    from osrm_core import lora
    from osrm_core.models import head_module_names, load_classifier
    from stages.io.atomic import atomic_dir
    from stages.io.artifacts import TaskAdapter
    from stages.io.run import open_run

    run = open_run(config)
    for i, task in enumerate(run.tasks):
        spec, _ = run.load_task(task)
        torch.manual_seed(seed + i)
        model = load_classifier(run.spec, spec.num_labels)
        model = lora.attach_lora(model, run.spec.target_suffixes(run.cfg.lora.blocks), run.cfg.lora, head_module_names(model))
        with torch.no_grad():
            for layer in lora.lora_layers(model).values():
                layer.lora_B["default"].weight.normal_(0, 0.05)
        with atomic_dir(run.layout.adapter(arm, task)) as tmp:
            model.save_pretrained(tmp)
            TaskAdapter.seal(tmp, {"task": task}, upstream={}, backbone=run.backbone_identity(), arm=arm, task=task,
                             init=run.cfg.arms[arm].init,
                             num_labels=spec.num_labels, rank=run.cfg.lora.rank, blocks=run.cfg.lora.blocks)


@pytest.fixture
def sweep_config(tmp_path, tiny_backbone):
    cfg = tiny_pipeline(tmp_path / "runs", tiny_backbone, merge={
        "methods": {"task_arithmetic": {"lambda": 0.5}, "ties": {"density": 0.5}},
        "sweep": {"task_arithmetic": {"lambda": [0.2, 0.6, 1.0]}, "ties": {"lambda": [1.0], "density": [0.2, 0.8]}},
        "sweep_max_eval": 8})
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    for k, arm in enumerate(("lora", "osrm")):
        fake_adapters(path, arm, 100 * k)
    return path


def test_sweep_run_and_plot(cli, sweep_config):
    root = sweep_config.parent / "runs"
    for init in ("lora", "osrm"):
        for method in ("task_arithmetic", "ties"):
            cli("sweep", "run", "-c", sweep_config, "--arm", init, "--method", method)
    res = json.loads((root / "sweeps/seed42/lora/task_arithmetic/results.json").read_text())
    assert [g["params"]["lambda"] for g in res["grid"]] == [0.2, 0.6, 1.0]
    assert set(res["grid"][0]["scores"]) == set(TINY_TASKS)
    assert [c["n"] for c in res["tasks_curve"]] == [2, 3]
    assert res["tasks_curve"][0]["tasks"] == TINY_TASKS[:2]
    ties = json.loads((root / "sweeps/seed42/osrm/ties/results.json").read_text())
    assert [g["params"]["density"] for g in ties["grid"]] == [0.2, 0.8]
    out = cli("sweep", "plot", "-c", sweep_config)
    plots = root / "sweeps/seed42/plots"
    assert (plots / "params.png").stat().st_size > 1000 and (plots / "tasks.png").stat().st_size > 1000
    assert "LoRA+OSRM | ties | density=0.8, lambda=1" in (plots / "sweeps.md").read_text()
    assert "sweep plots" in out.output


def test_sweep_grid_matches_a_full_merge_and_evaluate(cli, sweep_config):
    """One grid point (λ = 0.6, no task cap beyond max_eval) equals `osrm merge` + `osrm evaluate` on the same rows."""
    cfg = yaml.safe_load(sweep_config.read_text())
    cfg["merge"]["methods"]["task_arithmetic"] = {"lambda": 0.6}
    cfg["data"]["max_eval"] = 8
    sweep_config.write_text(yaml.safe_dump(cfg))
    cli("sweep", "run", "-c", sweep_config, "--arm", "lora", "--method", "task_arithmetic")
    cli("merge", "-c", sweep_config, "--arm", "lora", "--method", "task_arithmetic")
    cli("evaluate", "-c", sweep_config, "--model", "lora/task_arithmetic")
    root = sweep_config.parent / "runs"
    grid = json.loads((root / "sweeps/seed42/lora/task_arithmetic/results.json").read_text())["grid"]
    full = json.loads((root / "eval/seed42/merged/lora/task_arithmetic/metrics.json").read_text())
    point = next(g for g in grid if g["params"]["lambda"] == 0.6)
    for t in TINY_TASKS:
        assert point["scores"][t] == pytest.approx(full["tasks"][t]["score"], abs=1e-6)


def test_sweep_errors_are_one_line(cli, sweep_config):
    res = cli("sweep", "run", "-c", sweep_config, "--arm", "lora", "--method", "emr", ok=False)
    assert res.exit_code != 0 and "merge.sweep" in res.output
    res = cli("sweep", "run", "-c", sweep_config, "--arm", "lora", "--method", "fisher", ok=False)
    assert res.exit_code != 0 and "merge.sweep" in res.output
