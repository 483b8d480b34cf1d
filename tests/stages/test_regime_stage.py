"""build-subspace honours an arm's osrm.k (a prefix of the seeded feature sample) and reports the regime; the
report's Regime section (stages/report.py). Tiny random BERT: d_in = 32, 3 tasks, r = 4."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from osrm_core import subspace
from osrm_core.errors import OsrmError
from osrm_pipeline.run import open_run
from stages.io.artifacts import Features, Subspace
from stages.io.feature_store import FeatureCache
from tests.conftest import TINY_TASKS, tiny_pipeline

ARMS = {"lora": {"init": "gaussian"}, "osrm": {"init": "osrm"}, "osrm_k8": {"init": "osrm", "osrm": {"k": 8}}}


def _config(folder, backbone, **over):
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tiny_pipeline(folder / "runs", backbone, **over)))
    return path


def _build(cli, cfg):
    for t in TINY_TASKS:
        cli("extract-features", "-c", cfg, "--task", t)
    return cli("build-subspace", "-c", cfg, "--task", "all")


@pytest.fixture(scope="module")
def two_k(tmp_path_factory, tiny_backbone):
    """One run with arms k=16 (the config's) and k=8, and one run extracted at k=8."""
    from tests.conftest import Cli

    cli, root = Cli(), tmp_path_factory.mktemp("armk")
    (root / "a").mkdir(), (root / "b").mkdir()
    both = _config(root / "a", tiny_backbone, arms=ARMS)
    small = _config(root / "b", tiny_backbone, osrm={"k": 8, "batch_size": 16})
    return both, _build(cli, both).output, small, _build(cli, small).output


def _sub(cfg, arm, task):
    folder = cfg.parent / "runs/subspaces/seed42" / arm / task
    return load_file(folder / "subspace.safetensors"), json.loads((folder / "manifest.json").read_text()), folder


def test_arm_k_gives_its_own_subspace(two_k):
    both, _, small, _ = two_k
    for t in TINY_TASKS:
        a16, m16, _ = _sub(both, "osrm", t)
        a8, m8, f8 = _sub(both, "osrm_k8", t)
        ref, _, _ = _sub(small, "osrm", t)
        assert m16["k"] == 16 and m8["k"] == 8
        assert any(not torch.allclose(a16[m], a8[m], atol=1e-3) for m in a16)  # not the k=16 subspace
        rows = {r["rows"] for r in json.loads((f8 / "report.json").read_text()).values()}
        assert rows == {2 * 8}  # the other 2 tasks' first 8 rows each
        for m in a8:  # = the subspace of a run that extracted only k=8 (same rows; forward passes batched differently)
            torch.testing.assert_close(a8[m], ref[m], atol=1e-4, rtol=0)


def test_arm_k_equals_the_first_k_rows_exactly(two_k):
    both = two_k[0]
    run = open_run(both, arm="osrm_k8")
    features = Features.open_all(run, run.tasks)  # the arm's view passes the feature checks (diagnose, merge)
    caches = {t: f.sample(8) for t, f in features.items()}
    for t in TINY_TASKS:
        full, cut = FeatureCache(features[t].folder), caches[t]
        m = next(iter(full.aliases))
        assert cut.rows(m).shape == (8, 32) and all(any(torch.equal(r, x) for x in full.rows(m)) for r in cut.rows(m))
        assert features[t].sample(16) is features[t].cache  # the whole cache: unchanged (bit-identical subspaces)
    got, _ = subspace.solve_subspaces(caches, features[TINY_TASKS[0]].manifest.modules, TINY_TASKS, "sample-mean", 4, 42)
    for t in TINY_TASKS:
        stored, _, _ = _sub(both, "osrm_k8", t)
        assert all(torch.equal(stored[m], got[t][m]) for m in stored)
        Subspace.open(run, "osrm_k8", t)  # its manifest k is what the arm needs
    with pytest.raises(OsrmError) as err:
        features[TINY_TASKS[0]].sample(17)
    assert "extracted at osrm.k=16, this arm needs k=17" in str(err.value) and "extract-features" in str(err.value)


def test_cache_without_draw_order_cannot_be_cut(two_k, tmp_path):
    import shutil

    import zarr

    src = Features.open(open_run(two_k[0]), TINY_TASKS[0]).folder
    shutil.copytree(src, tmp_path / "f")
    g = zarr.open_group(str(tmp_path / "f/features.zarr"), mode="r+")
    del g.attrs["draw"]
    old = FeatureCache(tmp_path / "f")
    assert old.prefix(16) is old
    with pytest.raises(OsrmError, match="predates per-row draw order.*rerun `osrm extract-features`"):
        old.prefix(8)


def test_regime_reported_and_printed(two_k):
    both, out, _, _ = two_k
    for arm, exact in (("osrm", False), ("osrm_k8", True)):
        for t in TINY_TASKS:
            folder = _sub(both, arm, t)[2]
            for row in json.loads((folder / "report.json").read_text()).values():
                reg = row["regime"]
                assert reg["d_in"] == 32 and reg["null_dim"] == 32 - reg["rank"] and reg["exact"] is exact
                assert reg["rows"] == (32 if arm == "osrm" else 16) and (reg["null_dim"] >= 16) is exact
                assert reg["token_energy_vs_random"] > 0  # the other tasks' held-out tokens (docs/regimes.md)
            summary = json.loads((folder / "regime.json").read_text())
            assert summary["layers"] == 4 and summary["exact_layers"] == (4 if exact else 0)
            assert summary["rel_tol"] == 1e-10 and "1e-10" in summary["tolerance"] and summary["k"] == (8 if exact else 16)
    lines = {ln.split(":")[0]: ln for ln in out.splitlines() if ln.startswith(("osrm:", "osrm_k8:"))}
    assert lines["osrm"].startswith("osrm: no exact null space at any of 12 layers × tasks (3 tasks) "
                                    "(other tasks give 32 rows ≥ d_in 32")
    assert lines["osrm_k8"].startswith("osrm_k8: exact null space (dim ≥ r=4) at all 12 layers × tasks")
    assert all(ln.endswith("docs/regimes.md") and "their held-out tokens: " in ln for ln in lines.values())


def test_regime_section(two_k):
    from stages.report import regime_section

    text, numbers = regime_section(open_run(two_k[0]))
    assert set(numbers) == {"osrm", "osrm_k8"}  # lora does not start from a subspace
    assert numbers["osrm"]["exact_layers"] == 0 and numbers["osrm_k8"]["exact_layers"] == numbers["osrm_k8"]["layers"] == 12
    assert numbers["osrm_k8"]["median_null_dim"] >= 16 and numbers["osrm_k8"]["median_captured_energy_vs_random"] < 1e-6
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for d in numbers.values() for v in d.values())
    assert "## Regime" in text and "`osrm_k8`: exact null space (dim ≥ r=4) at 12/12 layers × tasks" in text
    assert "`lora`" not in text and "docs/regimes.md" in text and "their held-out tokens" in text
    assert numbers["osrm_k8"]["median_token_energy_vs_random"] > 0
    assert regime_section(open_run(two_k[2])) [0].count("\n- ") == 1
