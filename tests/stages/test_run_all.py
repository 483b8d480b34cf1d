"""`osrm run`: every stage for a config in one process, in DVC's order, ending in the pooled report."""

from __future__ import annotations

import json

import yaml

from tests.conftest import TINY_TASKS, tiny_pipeline


def test_run_all_stages_in_one_process(cli, tmp_path, tiny_backbone):
    cfg = tiny_pipeline(tmp_path / "runs", tiny_backbone, tasks=TINY_TASKS[:2], seeds=[1, 2],
                        arms={"lora": {"init": "gaussian"}, "osrm": {"init": "osrm"}},
                        evaluate={"split": "test", "batch_size": 32},
                        merge={"methods": {"task_arithmetic": {"lambda": 0.3}}, "sweep": {"task_arithmetic": {"lambda": [0.6, 1.0]}},
                               "sweep_tasks": []})
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = cli("run", "-c", path)
    assert "pipeline finished" in res.output
    metrics = json.loads((tmp_path / "runs/report/metrics.json").read_text())
    entry = metrics["osrm"]["task_arithmetic"]
    assert entry["n_seeds"] == 2 and "ci_low" in entry and entry["ci_low"] <= entry["diff"] <= entry["ci_high"]
    assert (tmp_path / "runs/diagnostics_summary/summary.json").is_file()
    stamp = (tmp_path / "runs/report/manifest.json").stat().st_mtime_ns
    res = cli("run", "-c", path, "--skip-done")  # every artifact exists: only the two pooled steps run again
    assert res.output.count("osrm ") <= 3 and (tmp_path / "runs/report/manifest.json").stat().st_mtime_ns > stamp


def test_skip_done_skips_subspaces_when_the_last_arm_has_none(cli, tmp_path, tiny_backbone):
    """build-subspace writes no manifest for an arm that does not start from a subspace; with such an arm last,
    --skip-done must still see the step as done."""
    cfg = tiny_pipeline(tmp_path / "runs", tiny_backbone, tasks=TINY_TASKS[:2],
                        arms={"osrm": {"init": "osrm"}, "lora": {"init": "gaussian"}})
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))  # arm order kept: lora last
    steps = ("--only", "extract-features", "--only", "build-subspace")
    cli("run", "-c", path, *steps)
    res = cli("run", "-c", path, *steps, "--skip-done")
    assert "osrm build-subspace" not in res.output and "osrm extract-features" not in res.output
