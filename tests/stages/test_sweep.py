"""`osrm select` on a tiny BERT with random (untrained) PEFT adapters: fast, no fine-tuning. `fake_adapters` is
shared with the other stage tests."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tests.conftest import TINY_TASKS, tiny_pipeline


def fake_adapters(config, arm: str, seed: int, run_seed: int | None = None) -> None:
    """Write a PEFT adapter (random B, task head) + finetune manifest per task, as `osrm finetune` would."""
    from osrm_core import lora
    from osrm_core.models import head_module_names, load_classifier
    from osrm_pipeline.run import open_run
    from stages.io.artifacts import TaskAdapter
    from stages.io.atomic import atomic_dir

    run = open_run(config, {"seed": run_seed})
    for i, task in enumerate(run.tasks):
        spec, _ = run.load_task(task)
        torch.manual_seed(seed + i)
        model = load_classifier(run.spec, spec.num_labels)
        model = lora.attach_lora(model, run.spec.target_suffixes(run.cfg.lora.blocks), head_module_names(model),
                                 **run.cfg.lora.adapter_args())
        with torch.no_grad():
            for layer in lora.lora_layers(model).values():
                layer.lora_B["default"].weight.normal_(0, 0.05)
        with atomic_dir(run.layout.adapter(arm, task)) as tmp:
            model.save_pretrained(tmp)
            TaskAdapter.seal(tmp, {"task": task}, upstream={}, backbone=run.backbone_identity(), arm=arm, task=task,
                             init=run.cfg.arms[arm].init,
                             num_labels=spec.num_labels, rank=run.cfg.lora.rank, blocks=run.cfg.lora.blocks)


METHODS = {"weight_average": {}, "task_arithmetic": {"lambda": 0.5}, "ties": {"density": 0.5}}
SWEEP = {"task_arithmetic": {"lambda": [0.2, 0.6, 1.0]}, "ties": {"lambda": [0.5, 1.0], "density": [0.2, 0.8]}}


def select_config(folder, backbone, methods=METHODS, sweep=SWEEP, widen=2, **overrides):
    """A tiny pipeline (test split scored) with fake adapters for both arms and every seed; returns the config path."""
    cfg = tiny_pipeline(folder / "runs", backbone, merge={"methods": methods, "sweep": sweep, "sweep_tasks": ["task_arithmetic"],
                                                          "widen": widen},
                        evaluate={"split": "test", "batch_size": 32}, **overrides)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    for s in cfg.get("seeds", [42]):
        for k, arm in enumerate(("lora", "osrm")):
            fake_adapters(path, arm, 100 * k + s, s)
    return path


@pytest.fixture
def sweep_config(tmp_path, tiny_backbone):
    return select_config(tmp_path, tiny_backbone)


def _results(config, arm="lora", seed=42) -> dict:
    return json.loads((config.parent / f"runs/selection/seed{seed}/{arm}/results.json").read_text())


def test_select_writes_the_choice_and_three_variants(cli, sweep_config):
    from safetensors.torch import load_file

    cli("select", "-c", sweep_config, "--arm", "lora")
    res = _results(sweep_config)
    ta, ties, wa = (res["methods"][m] for m in ("task_arithmetic", "ties", "weight_average"))
    # the default (merge.methods) is the first grid point, then the product; the default is not repeated
    assert [g["params"]["lambda"] for g in ta["grid"][:4]] == [0.5, 0.2, 0.6, 1.0]
    assert ties["grid"][0]["params"] == {"density": 0.5, "lambda": 1.0} and len(ties["grid"]) == 5 + len(ties["widened"])
    assert ta["widened"] == [g["params"] for g in ta["grid"][4:]]  # merge.widen: points beyond an edge, after the grid
    best = max(g["average"] for g in ta["grid"])
    assert ta["chosen"] == next(g["params"] for g in ta["grid"] if g["average"] == best)  # first of the best
    assert set(ta["variants"]) == {"chosen", "default", "lambda1"} and ta["variants"]["lambda1"]["params"] == {"lambda": 1.0}
    assert wa["grid"] == [] and set(wa["variants"]) == {"chosen", "default"}  # no grid, no λ
    assert wa["variants"]["chosen"] == wa["variants"]["default"]
    assert [c["n"] for c in ta["tasks_curve"]] == [2, 3] and ties["tasks_curve"] == []
    assert res["rows"]["validation"] == {t: 24 for t in TINY_TASKS}
    # edges (docs/merging.md): recorded per swept parameter; the curve's all-task point is the grid's default point
    values = sorted(g["params"]["lambda"] for g in ta["grid"])
    side = {values[0]: {"lambda": "min"}, values[-1]: {"lambda": "max"}}.get(ta["chosen"]["lambda"], {})
    assert ta["edge"] == side and wa["edge"] == {}
    assert {k: v for k, v in ta["tasks_curve"][-1].items() if k not in ("n", "tasks")} == \
        {k: v for k, v in ta["grid"][0].items() if k != "params"}
    assert wa["identical"] == [["chosen", "default"]]
    logits = load_file(sweep_config.parent / "runs/selection/seed42/lora/logits-lambda1.safetensors")
    assert set(logits) == {f"{m}::{t}" for m in ("task_arithmetic", "ties") for t in TINY_TASKS}
    assert logits[f"ties::{TINY_TASKS[1]}"].shape == (24, 6)  # question_type: 6 classes, every test row


def test_select_records_edges_and_identical_variants(cli, tmp_path, tiny_backbone):
    """Two λ values (the default 0.5 and 1): TA's choice is always an edge; ties' density ∈ {0.5, 1} is one too, at
    1 the natural bound; ties' λ has one value (no edge). ties chosen = default = λ1 when density 0.5 wins."""
    config = select_config(tmp_path, tiny_backbone, methods={"task_arithmetic": {"lambda": 0.5}, "ties": {"density": 0.5}},
                           sweep={"task_arithmetic": {"lambda": [1.0]}, "ties": {"density": [1.0]}}, widen=0)
    out = cli("select", "-c", config, "--arm", "lora").output
    ta, ties = (_results(config)["methods"][m] for m in ("task_arithmetic", "ties"))
    assert ta["edge"] == {"lambda": "min" if ta["chosen"]["lambda"] == 0.5 else "max"}
    assert ties["edge"] == {"density": "max-bound" if ties["chosen"]["density"] == 1.0 else "min"}
    assert "lambda on the grid's" in out and "density on the grid's" in out
    if ties["chosen"]["density"] == 0.5:
        assert ties["identical"] == [["chosen", "default", "lambda1"]]
    else:
        assert ties["identical"] == [["default", "lambda1"]]
    for v in ties["identical"][0][1:]:  # scored once: the same numbers
        assert ties["variants"][v]["scores"] == ties["variants"][ties["identical"][0][0]]["scores"]


def test_select_widens_open_edges_on_validation(cli, tmp_path, tiny_backbone):
    """merge.widen rounds: while the validation choice sits on an edge that is not a natural bound, the points one
    grid step beyond it (osrm_core.selection.beyond_edges) are scored and the choice is made again; the edge then
    recorded is the widened grid's. Two λ values, so the first choice is always an edge."""
    from osrm_core.merge import get_method
    from osrm_core.selection import beyond_edges, choose_on_validation, param_bounds

    config = select_config(tmp_path, tiny_backbone, methods={"task_arithmetic": {"lambda": 0.5}},
                           sweep={"task_arithmetic": {"lambda": [1.0]}})
    cli("select", "-c", config, "--arm", "lora")
    ta = _results(config)["methods"]["task_arithmetic"]
    bounds = param_bounds(get_method("task_arithmetic").params, "lambda")
    grid, n = ta["grid"][:2], 2
    for _ in range(2):  # the default merge.widen
        new = beyond_edges(grid, choose_on_validation(grid)["params"], bounds)
        assert [g["params"] for g in ta["grid"][n:n + len(new)]] == new
        grid, n = ta["grid"][:n + len(new)], n + len(new)
    assert len(ta["grid"]) == n and ta["widened"] == [g["params"] for g in ta["grid"][2:]] and ta["widened"]
    assert ta["chosen"] == choose_on_validation(ta["grid"])["params"]


def test_scrambled_test_labels_do_not_change_the_choice(cli, sweep_config, monkeypatch):
    """The choice sees validation only: corrupting every TEST label changes test scores, never the chosen params."""
    from osrm_pipeline.run import Run

    cli("select", "-c", sweep_config, "--arm", "lora")
    clean = _results(sweep_config)
    load = Run._load_task

    def corrupted(self, task):
        spec, data = load(self, task)
        labels = data["test"]["label"]
        flip = [(y + 1) % spec.num_labels if not spec.is_regression else -y for y in labels]
        data["test"] = data["test"].remove_columns("label").add_column("label", flip)
        return spec, data

    monkeypatch.setattr(Run, "_load_task", corrupted)
    cli("select", "-c", sweep_config, "--arm", "lora")
    dirty = _results(sweep_config)
    for m in METHODS:
        assert dirty["methods"][m]["chosen"] == clean["methods"][m]["chosen"]
        assert dirty["methods"][m]["grid"] == clean["methods"][m]["grid"]
    assert dirty["methods"]["ties"]["variants"]["chosen"]["average"] != clean["methods"]["ties"]["variants"]["chosen"]["average"]


def test_chosen_point_equals_merge_and_evaluate(cli, sweep_config):
    """The chosen point's test scores equal `osrm merge` with those params + `osrm evaluate` on the same rows."""
    cli("select", "-c", sweep_config, "--arm", "osrm")
    chosen = _results(sweep_config, "osrm")["methods"]["ties"]["variants"]["chosen"]
    cfg = yaml.safe_load(sweep_config.read_text())
    cfg["merge"]["methods"]["ties"] = chosen["params"]
    sweep_config.write_text(yaml.safe_dump(cfg))
    cli("merge", "-c", sweep_config, "--arm", "osrm", "--method", "ties")
    cli("evaluate", "-c", sweep_config, "--model", "osrm/ties")
    full = json.loads((sweep_config.parent / "runs/eval/seed42/merged/osrm/ties/metrics.json").read_text())
    for t in TINY_TASKS:
        assert chosen["scores"][t] == pytest.approx(full["tasks"][t]["score"], abs=1e-9)


@pytest.mark.parametrize("sweep, message", [({"ties": {"alpha": [1.0]}}, "merge.sweep.ties.alpha"),
                                            ({"emr": {"lambda": [1.0]}}, "merge.sweep.emr"),
                                            ({"ties": {"density": [1.5]}}, "merge.sweep.ties.density")])
def test_select_grid_errors_are_one_line(cli, sweep_config, sweep, message):
    cfg = yaml.safe_load(sweep_config.read_text())
    cfg["merge"]["sweep"] = sweep
    sweep_config.write_text(yaml.safe_dump(cfg))
    res = cli("select", "-c", sweep_config, "--arm", "lora", ok=False)
    assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output
