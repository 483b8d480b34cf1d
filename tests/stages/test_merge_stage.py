"""`osrm merge` + `osrm evaluate` for every registry method on a tiny BERT (3 tasks, gaussian adapters).

One module-scoped pipeline (features + random, untrained PEFT adapters with heads: no fine-tuning, so it
stays fast), then every method is merged and scored.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors import safe_open

from osrm_core.merge import METHODS
from stages.io.adapters import Adapter
from stages.io.shards import read_sharded
from tests.conftest import TINY_TASKS, Cli, tiny_pipeline
from tests.stages.test_sweep import fake_adapters

METHOD_PARAMS = {"task_arithmetic": {"lambda": 0.5}, "ties": {"density": 0.5}, "dare_linear": {"density": 0.5},
                 "dare_ties": {"density": 0.5}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_backbone):
    """(cli, config path, workdir) with features and gaussian adapters for TINY_TASKS."""
    root = tmp_path_factory.mktemp("merge-stage")
    cfg = tiny_pipeline(root / "runs", tiny_backbone, arms={"lora": {"init": "gaussian"}},
                        merge={"methods": METHOD_PARAMS, "fisher_samples": 8, "fisher_batch_size": 4})
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = Cli()
    for t in TINY_TASKS:
        cli("extract-features", "-c", path, "--task", t)
    fake_adapters(path, "lora", 0)
    return cli, path, root / "runs"


def _with_merge(path, tmp_path, **merge) -> object:
    cfg = yaml.safe_load(path.read_text())
    cfg["merge"] = {**cfg["merge"], **merge}
    out = tmp_path / "pipeline.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def test_every_registry_method_merges_and_evaluates(trained):
    cli, path, runs = trained
    for method in METHODS:
        cli("merge", "-c", path, "--arm", "lora", "--method", method)
        cli("evaluate", "-c", path, "--model", f"lora/{method}")
        metrics = json.loads((runs / "eval" / "seed42" / "merged" / "lora" / method / "metrics.json").read_text())
        assert set(metrics["tasks"]) == set(TINY_TASKS), method
        assert all(v["score"] == v["score"] for v in metrics["tasks"].values()), f"{method}: NaN score"
    fisher = json.loads((runs / "merged/seed42/lora/fisher/manifest.json").read_text())
    assert fisher["config"]["fisher"]["fisher_samples"] == 8
    assert not any(p.name.startswith(".fisher") for p in runs.iterdir())  # scratch Fishers are removed


def test_task_arithmetic_merge_of_one_task_reproduces_its_adapter(trained, tmp_path):
    cli, path, runs = trained
    cfg = _with_merge(path, tmp_path, methods={"task_arithmetic": {"lambda": 1.0}})
    data = yaml.safe_load(cfg.read_text())
    data["tasks"] = TINY_TASKS[:1]
    cfg.write_text(yaml.safe_dump(data))
    cli("merge", "-c", cfg, "--arm", "lora", "--method", "task_arithmetic")
    merged, own = Adapter(runs / "merged/seed42/lora/task_arithmetic"), Adapter(runs / "adapters/seed42/lora" / TINY_TASKS[0])
    for m in own.modules:
        torch.testing.assert_close(merged.delta(m), own.delta(m), rtol=1e-5, atol=1e-6)


def test_emr_serves_each_task_its_own_masked_update(trained):
    cli, path, runs = trained
    cli("merge", "-c", path, "--arm", "lora", "--method", "emr")
    folder = runs / "merged/seed42/lora/emr"
    deltas = read_sharded(folder, "delta")
    module = Adapter(runs / "adapters/seed42/lora" / TINY_TASKS[0]).modules[0]
    per_task = [deltas[f"{t}::{module}"] for t in TINY_TASKS]
    assert not torch.equal(per_task[0], per_task[1])
    from osrm_pipeline.layout import ModelRef
    from osrm_pipeline.run import open_run
    from stages.io.artifacts import Merged, TaskAdapter
    from stages.io.served import body_update

    run = open_run(path)
    hashes = {t: TaskAdapter.open(run, "lora", t).content_hash for t in TINY_TASKS}
    merged = Merged.open(run, "lora", "emr", hashes)
    for t, expected in zip(TINY_TASKS, per_task):
        update = body_update(ModelRef("lora", "emr"), t, {}, merged)
        torch.testing.assert_close(update[module], expected)
    unified = deltas[module]  # every served entry is the unified entry or zero
    assert bool(((per_task[0] == 0) | (torch.sign(per_task[0]) == torch.sign(unified))).all())


def test_low_rank_truncation_writes_an_adapter_and_records_the_error(trained, tmp_path):
    cli, path, runs = trained
    cfg = _with_merge(path, tmp_path, low_rank=2)
    for method in ("ties", "task_arithmetic"):
        res = cli("merge", "-c", cfg, "--arm", "lora", "--method", method)
        folder = runs / "merged/seed42/lora" / method
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["low_rank"] is True and manifest["truncation"]["rank"] == 2
        assert 0 < manifest["truncation"]["max_error"] < 1 and "truncated to rank 2" in res.output
        with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
            assert all(f.get_slice(k).get_shape()[0 if "lora_A" in k else 1] == 2 for k in f.keys())
        info = json.loads((folder / "info.json").read_text())
        assert all(0 <= v["low_rank_error"] < 1 for v in info.values())
    cli("evaluate", "-c", cfg, "--model", "lora/ties")


def test_bad_merge_fields_are_one_line_errors(trained, tmp_path):
    cli, path, _ = trained
    res = cli("merge", "-c", _with_merge(path, tmp_path, low_rank=0), "--arm", "lora", "--method", "ties", ok=False)
    assert res.exit_code != 0 and "merge.low_rank" in res.output and "\n" not in res.output.strip()


def _tensors(folder) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            out.update({f"{f.name}:{k}": h.get_tensor(k) for k in h.keys()})
    return out


def test_method_all_equals_one_process_per_method(trained, tmp_path):
    """`--method all` (what dvc.yaml runs) writes every method of merge.methods, bit-identical to
    separate `--method M` runs (each method restarts its seeded generator)."""
    cli, path, runs = trained
    chosen = ["dare_ties", "ties", "regmean"]
    cfg = _with_merge(path, tmp_path, methods={m: METHOD_PARAMS.get(m, {}) for m in chosen})
    separate = {}
    for m in chosen:
        cli("merge", "-c", cfg, "--arm", "lora", "--method", m)
        separate[m] = _tensors(runs / "merged/seed42/lora" / m)
    cli("merge", "-c", cfg, "--arm", "lora", "--method", "all")
    for m in chosen:
        together = _tensors(runs / "merged/seed42/lora" / m)
        assert together.keys() == separate[m].keys() and together, m
        for k in together:
            assert torch.equal(together[k], separate[m][k]), (m, k)


def test_one_bad_method_parameter_writes_no_method(trained, tmp_path):
    cli, path, runs = trained
    cfg = _with_merge(path, tmp_path, methods={"weight_average": {}, "ties": {"density": 7.0}})
    before = {p: p.stat().st_mtime_ns for p in (runs / "merged").rglob("manifest.json")} if (runs / "merged").exists() else {}
    res = cli("merge", "-c", cfg, "--arm", "lora", "--method", "all", ok=False)
    assert res.exit_code != 0 and "merge.methods.ties.density" in res.output
    after = {p: p.stat().st_mtime_ns for p in (runs / "merged").rglob("manifest.json")} if (runs / "merged").exists() else {}
    assert after == before
