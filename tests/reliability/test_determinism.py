"""Same config + seed => identical artifact content hashes (manifest excluded) on the CPU."""

from __future__ import annotations

import json
import shutil

import pytest
from rel_lib import Work

from stages.io.manifest import content_hash
from tests.conftest import TINY_TASKS

T0 = TINY_TASKS[0]


def _hash(folder):
    recorded = json.loads((folder / "manifest.json").read_text())["content_hash"]
    assert recorded == content_hash(folder)  # the manifest's hash is the content's, manifest excluded
    return recorded


def test_extract_features_is_deterministic(work, rel_base, cli):
    shutil.rmtree(work.root / "features/seed42" / T0)
    cli("extract-features", "-c", work.cfg, "--task", T0)
    assert _hash(work.root / "features/seed42" / T0) == _hash(rel_base / "runs" / "features/seed42" / T0)


def test_build_subspace_is_deterministic(work, rel_base, cli):
    shutil.rmtree(work.root / "subspaces/seed42/osrm" / T0)
    cli("build-subspace", "-c", work.cfg, "--task", T0)
    assert _hash(work.root / "subspaces/seed42/osrm" / T0) == _hash(rel_base / "runs" / "subspaces/seed42/osrm" / T0)


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "dare_ties"])
def test_merge_is_deterministic(tmp_path, rel_base, tiny_backbone, cli, method):
    hashes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        w = Work(tmp_path / name, rel_base, tiny_backbone)
        w.config(merge={"methods": {method: {}}})
        cli("merge", "-c", w.cfg, "--arm", "lora", "--method", method)
        hashes.append(_hash(w.root / "merged/seed42" / "lora" / method))
    assert hashes[0] == hashes[1]


def test_manifest_records_provenance(rel_base):
    m = json.loads((rel_base / "runs" / "subspaces/seed42/osrm" / T0 / "manifest.json").read_text())
    for key in ("schema_version", "stage", "config", "config_hash", "upstream", "seed", "versions", "git_commit",
                "files", "content_hash", "backbone"):
        assert key in m, key
    assert set(m["upstream"]) == set(TINY_TASKS) and m["backbone"]["weights"] and m["seed"] == 42
    assert {"torch", "safetensors", "zarr"} <= set(m["versions"])
    f = json.loads((rel_base / "runs" / "features/seed42" / T0 / "manifest.json").read_text())
    assert f["backbone"]["source"] and len(f["backbone"]["weights"]) == 64 and f["seed"] == 42
