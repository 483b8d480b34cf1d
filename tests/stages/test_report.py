"""`osrm report` over 2 seeds × 2 arms of fake adapters: nested-number metrics.json (what `dvc metrics show`
reads), numbers equal to a direct stats.paired_bootstrap on the stored logits, curves for DVC plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors.torch import load_file

from osrm_core.inference import seed_interval
from osrm_core.metrics import predictions
from osrm_core.stats import paired_bootstrap, t_interval
from tests.conftest import TINY_TASKS
from tests.stages.test_sweep import select_config

SEEDS = [1, 2]
METHODS = {"task_arithmetic": {"lambda": 0.5}, "ties": {"density": 0.5}}
SWEEP = {"task_arithmetic": {"lambda": [0.2, 1.0]}}


def _leaves(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}")
    else:
        yield path, node


@pytest.fixture(scope="module")
def study_run(tmp_path_factory, tiny_backbone):
    from tests.conftest import Cli

    cli, folder = Cli(), tmp_path_factory.mktemp("study")
    config = select_config(folder, tiny_backbone, methods=METHODS, sweep=SWEEP, seeds=SEEDS)
    for s in SEEDS:
        cli("evaluate", "-c", config, "--seed", s, "--model", "base", "--model", "lora/individual", "--model", "osrm/individual")
        for arm in ("lora", "osrm"):
            cli("select", "-c", config, "--seed", s, "--arm", arm)
    out = cli("report", "-c", config, "--n-boot", 200)
    return config, folder / "runs", out


def _preds(root, seed, arm, variant, method):
    logits = load_file(root / f"selection/seed{seed}/{arm}/logits-{variant}.safetensors")
    return {t: predictions(logits[f"{method}::{t}"].numpy(), t == "sentiment_score") for t in TINY_TASKS}


def test_report_metrics_are_nested_numbers(study_run):
    _, root, out = study_run
    metrics = json.loads((root / "report/metrics.json").read_text())
    leaves = list(_leaves(metrics))
    assert leaves and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for _, v in leaves), \
        [p for p, v in leaves if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)]
    osrm = metrics["osrm"]
    for key in ("average", "average_sd", "normalised", "normalised_sd", "diff", "ci_low", "ci_high", "t_low", "t_high",
                "norm_diff", "norm_ci_low", "norm_ci_high", "verdict_code"):
        assert key in osrm["ties"], key
    assert set(osrm["task_arithmetic"]) >= {"default", "lambda1", "params"} and "lambda1" in osrm["ties"]
    assert "diff" not in metrics["lora"]["ties"] and "diff" in osrm["individual"]  # the reference is not compared with itself
    assert osrm["ties"]["ci_low"] <= osrm["ties"]["diff"] <= osrm["ties"]["ci_high"]
    report = (root / "report/report.md").read_text()
    assert "| ties | LoRA+OSRM |" in report and "not a finding" in report and "λ = 1" in report
    assert (root / "report/merge.png").stat().st_size > 1000 and (root / "report/lambda.png").stat().st_size > 1000
    rows = json.loads((root / "report/curves/task_arithmetic.json").read_text())
    for a in ("lora", "osrm"):  # every seed's grid λ, and the widened λ every seed scored (merge.widen)
        sel = [json.loads((root / f"selection/seed{s}/{a}/results.json").read_text())["methods"]["task_arithmetic"] for s in SEEDS]
        common = set.intersection(*({w["lambda"] for w in r["widened"]} for r in sel))
        assert {r["lambda"] for r in rows if r["arm"] == a} == {0.2, 0.5, 1.0} | common
    assert "validation-chosen parameters (headline)" in out.output
    check = metrics["task_check"]
    assert set(check) == set(TINY_TASKS) and all(set(c) == {"chance", "floor", "individual", "gain", "learnt"} for c in check.values())
    for t, c in check.items():  # floor / individual are the base / reference-individual test scores, mean over seeds
        assert c["floor"] == pytest.approx(metrics["base"]["tasks"][t]) and c["individual"] == pytest.approx(metrics["lora"]["individual"]["tasks"][t])
        assert c["learnt"] == int(c["gain"] >= 5 and c["individual"] > c["chance"])
    assert "## Is every task learnt?" in report


def test_report_numbers_equal_a_direct_seed_interval(study_run):
    """diff / CI of osrm − lora (ties, chosen) equal the seed-level interval (per-seed differences + the rows-only
    paired bootstrap) on the stored logits; t-interval and mean too; ties is primary and Holm-adjusted."""
    from osrm_pipeline.run import open_run

    config, root, _ = study_run
    run = open_run(config)
    labels = {t: np.asarray(run.load_task(t)[1]["test"]["label"]) for t in TINY_TASKS}
    metric = {t: run.load_task(t)[0].metric for t in TINY_TASKS}
    runs = {a: {str(s): {t: (p, labels[t]) for t, p in _preds(root, s, a, "chosen", "ties").items()} for s in SEEDS}
            for a in ("osrm", "lora")}
    boot = paired_bootstrap(runs["osrm"], runs["lora"], metric, n_boot=200, seed=0, resample_seeds=False)
    got = json.loads((root / "report/metrics.json").read_text())["osrm"]["ties"]
    per_seed = {a: [np.mean([json.loads((root / f"selection/seed{s}/{a}/results.json").read_text())["methods"]["ties"]
                             ["variants"]["chosen"]["scores"][t] for t in TINY_TASKS]) for s in SEEDS] for a in runs}
    assert got["average"] == pytest.approx(np.mean(per_seed["osrm"]), abs=1e-9)
    diffs = np.subtract(per_seed["osrm"], per_seed["lora"])
    assert (got["t_low"], got["t_high"]) == pytest.approx(t_interval(diffs), abs=1e-9)
    si = seed_interval(diffs, boot.per_seed)
    assert (got["diff"], got["ci_low"], got["ci_high"], got["p"]) == pytest.approx((si.estimate, si.low, si.high, si.p), abs=1e-9)
    assert got["primary"] == 1 and got["p_holm"] >= got["p"]  # primary: task_arithmetic and ties, Holm over the family
    assert got["lambda1"]["primary"] == 0 and "p_holm" not in got["lambda1"]


def test_report_needs_the_test_split(cli, study_run):
    import yaml

    config, _, _ = study_run
    cfg = yaml.safe_load(config.read_text())
    bad = config.parent / "validation.yaml"
    bad.write_text(yaml.safe_dump({**cfg, "evaluate": {"split": "validation"}}))
    res = cli("report", "-c", bad, ok=False)
    assert res.exit_code != 0 and "evaluate.split" in res.output


def test_report_marks_grid_edges(study_run):
    """metrics.json's edge (docs/merging.md, "Edges of the grid") is select's per-seed edge as codes with counts, and
    the headline's params column marks every edge choice."""
    from osrm_core.report import format_params
    from osrm_core.selection import edge_numbers

    _, root, _ = study_run
    metrics = json.loads((root / "report/metrics.json").read_text())
    report = (root / "report/report.md").read_text()
    for arm, name in (("lora", "LoRA"), ("osrm", "LoRA+OSRM")):
        res = {s: json.loads((root / f"selection/seed{s}/{arm}/results.json").read_text())["methods"] for s in SEEDS}
        for m in METHODS:
            edge = metrics[arm][m]["edge"]
            assert edge == edge_numbers({f"seed{s}": res[s][m]["edge"] for s in SEEDS})
            cell = format_params({str(s): res[s][m]["chosen"] for s in SEEDS}, edge)
            assert f"| {m} | {name} | {cell} |" in report and (("(edge: " in cell) == (edge["seeds"] > 0))
        assert metrics[arm]["ties"]["edge"] == {f"seed{s}": {} for s in SEEDS} | {"count": {}, "seeds": 0}  # no grid
