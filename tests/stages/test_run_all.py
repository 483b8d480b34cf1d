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
    # sweep_tasks is empty: the report links no task-count plot, yet writes the file DVC declares
    assert "tasks.png" not in (tmp_path / "runs/report/report.md").read_text()
    assert (tmp_path / "runs/report/tasks.png").is_file()
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


def test_a_seed_filter_keeps_that_seeds_steps_and_drops_the_pooled_ones(tmp_path, tiny_backbone):
    """Two workers `osrm run --seed 1` and `--seed 2` split a study without writing one artifact twice; the pooled
    summary and report wait for a run without --seed."""
    from osrm_pipeline.pipeline_config import load_config
    from stages.run_all import for_seeds, plan

    cfg = tiny_pipeline(tmp_path / "runs", tiny_backbone, tasks=TINY_TASKS[:2], seeds=[1, 2])
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    steps = plan(path, load_config(path))
    one, two = for_seeds(steps, [1]), for_seeds(steps, [2])
    assert one and two and not {str(f) for *_, f in one} & {str(f) for *_, f in two}
    assert len(one) + len(two) == len(steps) - 2 and all(a[a.index("--seed") + 1] == "1" for _, a, _ in one)
    assert for_seeds(steps, [1, 2]) == steps[:-2]


def test_a_seed_outside_the_config_is_one_line(cli, tmp_path, tiny_backbone):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tiny_pipeline(tmp_path / "runs", tiny_backbone, tasks=TINY_TASKS[:2], seeds=[1])))
    res = cli("run", "-c", path, "--seed", "7", ok=False)
    assert res.exit_code != 0 and "--seed 7: not one of the config's seeds [1]" in res.output
    assert not (tmp_path / "runs").exists()
