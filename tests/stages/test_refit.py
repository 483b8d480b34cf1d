"""Arms that start from another arm's adapters (`from`): refit (the paper's post mode: A = A_t, B from the projected
update, then fine-tuned for refit_epochs) and posthoc (the projection that keeps keep_share of the own output shift)
run through `osrm run` like any other arm; config errors name the field in one line; configs/convert_study.yaml loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from osrm_core.errors import OsrmError
from osrm_pipeline.pipeline_config import load_config, parse_config
from stages.io.adapters import Adapter
from tests.conftest import TINY_TASKS, tiny_pipeline

REPO = Path(__file__).resolve().parents[2]
TASKS = TINY_TASKS[:2]
ARMS = {"lora": {"init": "gaussian"}, "projected": {"init": "refit", "from": "lora", "refit_epochs": 0},
        "refit": {"init": "refit", "from": "lora", "refit_epochs": 1}, "posthoc": {"init": "posthoc", "from": "lora"}}


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_backbone):
    """`osrm run` on a tiny config whose arms are a plain LoRA and three arms derived from it (listed before it)."""
    from tests.conftest import Cli

    root = tmp_path_factory.mktemp("refit")
    arms = {k: ARMS[k] for k in ("refit", "posthoc", "projected", "lora")}  # `from` orders them, not the listing
    cfg = tiny_pipeline(root / "runs", tiny_backbone, tasks=TASKS, arms=arms, reference="lora",
                        evaluate={"split": "test", "batch_size": 32},
                        merge={"methods": {"task_arithmetic": {"lambda": 0.5}}, "sweep": {"task_arithmetic": {"lambda": [0.5, 1.0]}},
                               "sweep_tasks": []})
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = Cli()("run", "-c", path)
    return root, path, res


def _adapter(root: Path, arm: str, task: str) -> Path:
    return root / "runs/adapters/seed42" / arm / task


def test_refit_starts_at_the_projected_update(study):
    """refit_epochs 0: s B A is exactly ΔW_lora A_tᵀ A_t (A_t: the arm's own subspace) and the head is lora's; the
    manifest names its upstream (the lora adapter it came from) and what the projection kept."""
    root, _, _ = study
    for task in TASKS:
        src, out = Adapter(_adapter(root, "lora", task)), Adapter(_adapter(root, "projected", task))
        sub = load_file(root / "runs/subspaces/seed42/projected" / task / "subspace.safetensors")
        for m in src.modules:
            a_t = sub[m].float()
            torch.testing.assert_close(out.factors(m)[0], a_t, atol=1e-6, rtol=0)
            torch.testing.assert_close(out.delta(m), src.delta(m) @ a_t.T @ a_t, atol=1e-5, rtol=0)
        for k, t in src.head().items():
            torch.testing.assert_close(out.head()[k], t)
        manifest = json.loads((_adapter(root, "projected", task) / "manifest.json").read_text())
        lora_hash = json.loads((_adapter(root, "lora", task) / "manifest.json").read_text())["content_hash"]
        assert manifest["source_arm"] == "lora" and manifest["upstream"]["from"] == lora_hash
        assert manifest["init"] == "refit" and "subspace" in manifest["upstream"]
    assert "projected/" in study[2].output and "(0 epochs: the start as it is, not trained)" in study[2].output


def test_refit_trains_from_the_subspace_and_posthoc_keeps_the_share(study):
    root, _, res = study
    for task in TASKS:
        training = json.loads((_adapter(root, "refit", task) / "training.json").read_text())
        assert len(training["history"]) == 1 and training["init"] == "refit"  # its own budget: 1 epoch
        assert training["a0_norm_mean"] == pytest.approx(4**0.5, rel=1e-5)  # A_0 = A_t: orthonormal rows, not rescaled
        assert Adapter(_adapter(root, "refit", task)).delta(next(iter(Adapter(_adapter(root, "lora", task)).modules))).abs().max() > 0
        kept = json.loads((_adapter(root, "posthoc", task) / "manifest.json").read_text())["kept"]
        assert kept["own"] >= 0.9 - 1e-6
        assert f"{task}: keeps" in res.output


def test_derived_arms_are_merged_selected_and_reported(study):
    root, _, res = study
    assert "pipeline finished" in res.output
    metrics = json.loads((root / "runs/report/metrics.json").read_text())
    for arm in ("refit", "projected", "posthoc"):
        assert (root / "runs/merged/seed42" / arm / "task_arithmetic" / "manifest.json").is_file()
        assert (root / "runs/selection/seed42" / arm / "manifest.json").is_file()
        assert arm in metrics


BAD = [
    ({"r": {"init": "refit"}}, "arms.r.from: init refit starts from another arm's adapters"),
    ({"r": {"init": "refit", "from": "nope"}}, "arms.r.from: 'nope' is not one of arms"),
    ({"r": {"init": "refit", "from": "p"}, "p": {"init": "posthoc", "from": "r"}}, "is a cycle"),
    ({"r": {"init": "gaussian", "from": "lora"}}, "arms.r.from: init gaussian does not read it"),
    ({"r": {"init": "posthoc", "from": "lora", "refit_epochs": 2}}, "arms.r.refit_epochs: init posthoc does not read it"),
    ({"r": {"init": "refit", "from": "lora", "refit_epochs": -1}}, "arms.r.refit_epochs"),
    ({"r": {"init": "refit", "from": "lora", "lora": {"a_norm": 2.0}}}, "arms.r.lora.a_norm: init refit starts at the converted update"),
]


@pytest.mark.parametrize("arms,needle", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_sources_fail_in_one_line(arms, needle):
    with pytest.raises(OsrmError) as err:
        parse_config({"arms": {"lora": {"init": "gaussian"}, **arms}}, "pipeline.yaml")
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and msg.startswith("pipeline.yaml"), msg


DERIVED_BAD = [
    ([{"arm": "r", "init": "refit"}], "derived[0].from: an arm under derived starts from another arm's adapters"),
    ([{"arm": "lora", "init": "refit", "from": "lora"}], "derived[0].arm: 'lora' is also a key of arms, with other settings"),
    ([{"init": "refit", "from": "lora"}], "derived.0.arm"),
]


@pytest.mark.parametrize("derived,needle", DERIVED_BAD, ids=[b[1][:30] for b in DERIVED_BAD])
def test_bad_derived_entries_fail_in_one_line(derived, needle):
    with pytest.raises(OsrmError) as err:
        parse_config({"arms": {"lora": {"init": "gaussian"}}, "derived": derived}, "pipeline.yaml")
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and msg.startswith("pipeline.yaml"), msg


def test_derived_arms_join_arms_and_survive_a_dump():
    """An entry of `derived` is arms[entry.arm] (after its source in arm_order); a dump holds it in both places and
    loads back to the same config (an arm's view, for_arm, is such a dump)."""
    from osrm_pipeline.pipeline_config import PipelineConfig

    cfg = parse_config({"arms": {"lora": {"init": "gaussian"}},
                        "derived": [{"arm": "refit", "init": "refit", "from": "lora", "refit_epochs": 0}]}, "pipeline.yaml")
    assert cfg.arms["refit"].from_ == "lora" and cfg.arms["refit"].refit_epochs == 0 and cfg.arm_order() == ["lora", "refit"]
    assert PipelineConfig.model_validate(cfg.model_dump(by_alias=True)) == cfg
    assert cfg.for_arm("refit").lora.init == "refit"


def test_convert_study_config_loads():
    """configs/convert_study.yaml: the imported-LoRA reference, projected, projected + re-fit and post-hoc arms, several
    seeds, TA and TIES chosen on validation (study.primary)."""
    cfg = load_config(REPO / "configs/convert_study.yaml")
    inits = {a: spec.init for a, spec in cfg.arms.items()}
    assert inits[cfg.reference] == "gaussian" and sorted(inits.values()) == ["gaussian", "posthoc", "refit", "refit"]
    assert {cfg.arms[a].from_ for a in cfg.arms if a != cfg.reference} == {cfg.reference}
    assert sorted(cfg.arms[a].refit_epochs for a in cfg.arms if inits[a] == "refit")[0] == 0
    assert len(cfg.seeds) >= 3 and cfg.arm_order()[0] == cfg.reference
    assert {"task_arithmetic", "ties"} <= set(cfg.merge.sweep) and set(cfg.study.primary) == {"task_arithmetic", "ties"}
    assert cfg.evaluate.split == "test"


def test_a_rebuilt_source_makes_the_derived_adapter_stale(study):
    """The derived adapter's manifest names the source adapter's hash: once that adapter changes, opening the derived
    one fails in one line that says to rerun its fine-tune (what `osrm merge` / `select` / `evaluate` run first)."""
    from osrm_pipeline.run import open_run
    from stages.io.artifacts import TaskAdapter

    root, path, _ = study
    manifest = _adapter(root, "lora", TASKS[0]) / "manifest.json"
    text = manifest.read_text()
    try:
        manifest.write_text(text.replace(json.loads(text)["content_hash"], "0" * 64))  # as if it had been rebuilt
        with pytest.raises(OsrmError) as err:
            TaskAdapter.open(open_run(path), "refit", TASKS[0])
        assert "made from an older adapter of arm 'lora'" in str(err.value) and "osrm finetune" in str(err.value)
    finally:
        manifest.write_text(text)
