"""extract-features and build-subspace on a tiny random BERT, including the user-error paths."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from stages.io.feature_store import FeatureCache
from tests.conftest import TINY_TASKS


def _extract_all(cli, cfg):
    for t in TINY_TASKS:
        cli("extract-features", "--config", cfg, "--task", t)


def test_extract_then_subspace(cli, tiny_config):
    _extract_all(cli, tiny_config)
    cfg = yaml.safe_load(tiny_config.read_text())
    root = tiny_config.parent / "runs"
    cache = FeatureCache(root / "features/seed42" / TINY_TASKS[0])
    manifest = json.loads((root / "features/seed42" / TINY_TASKS[0] / "manifest.json").read_text())
    assert manifest["rows"] == 16 and len(manifest["modules"]) == 4  # 2 layers x (query, value)
    q = manifest["modules"][0]
    v = q.replace("query", "value")
    assert cache.aliases[v] == q  # value reads the same hidden states as query: stored once
    assert cache.rows(q).shape == (16, 32) and cache.gram(v).shape == (32, 32)
    assert cache.count(q) > 16  # tokens, not samples
    manifest["k"] = manifest.pop("rows")  # as written before the key was named rows: still read, still fits
    (root / "features/seed42" / TINY_TASKS[0] / "manifest.json").write_text(json.dumps(manifest))
    for t in TINY_TASKS:
        cli("build-subspace", "--config", tiny_config, "--task", t)
    sub = load_file(root / "subspaces/seed42/osrm" / TINY_TASKS[0] / "subspace.safetensors")
    report = json.loads((root / "subspaces/seed42/osrm" / TINY_TASKS[0] / "report.json").read_text())
    for name, a in sub.items():
        assert a.shape == (cfg["lora"]["rank"], 32)
        torch.testing.assert_close(a @ a.T, torch.eye(a.shape[0]), atol=1e-5, rtol=0)
        assert report[name]["objective"] <= report[name]["random_objective"]
    # `--task all` (what dvc.yaml runs) writes every task's subspace, bit-identical to one task per process
    before = {t: load_file(root / "subspaces/seed42/osrm" / t / "subspace.safetensors") for t in TINY_TASKS}
    cli("build-subspace", "--config", tiny_config, "--task", "all")
    for t in TINY_TASKS:
        after = load_file(root / "subspaces/seed42/osrm" / t / "subspace.safetensors")
        assert after.keys() == before[t].keys() and all(torch.equal(after[k], before[t][k]) for k in after)
    res = cli("build-subspace", "--config", tiny_config, "--task", "all", "--task", "nope", ok=False)
    assert "'nope'" in res.output and len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("estimator", ["task-mean", "token"])
def test_other_estimators(cli, tmp_path, tiny_backbone, estimator):
    from tests.conftest import tiny_pipeline

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(tiny_pipeline(tmp_path / "runs", tiny_backbone, osrm={"estimator": estimator, "k": 8})))
    _extract_all(cli, path)
    cli("build-subspace", "--config", path, "--task", TINY_TASKS[1])
    report = json.loads((tmp_path / "runs/subspaces/seed42/osrm" / TINY_TASKS[1] / "report.json").read_text())
    for row in report.values():
        if estimator == "task-mean":  # 2 other tasks -> rank-2 H: exactly orthogonal
            assert row["objective"] < 1e-8 * row["trace"] and row["degenerate_rows"] == 4
        assert row["objective"] <= row["random_objective"]


def test_unknown_task_writes_nothing(cli, tiny_config):
    res = cli("extract-features", "--config", tiny_config, "--task", "nope", ok=False)
    assert res.exit_code == 2 and "'nope'" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tiny_config.parent / "runs").exists()


def test_missing_backbone_path(cli, tmp_path, tiny_backbone):
    spec = yaml.safe_load(tiny_backbone.read_text())
    spec["source"] = str(tmp_path / "does-not-exist")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    from tests.conftest import tiny_pipeline

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(tiny_pipeline(tmp_path / "runs", bad)))
    res = cli("extract-features", "--config", path, "--task", TINY_TASKS[0], ok=False)
    assert res.exit_code == 2 and "does-not-exist" in res.output and "does not exist" in res.output
    assert not (tmp_path / "runs").exists()


def test_subspace_before_features(cli, tiny_config):
    res = cli("build-subspace", "--config", tiny_config, "--task", TINY_TASKS[0], ok=False)
    assert res.exit_code == 2 and "osrm extract-features --task" in res.output
    assert not (tiny_config.parent / "runs" / "subspaces").exists()
