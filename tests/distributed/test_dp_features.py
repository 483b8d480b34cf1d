"""Data-parallel feature extraction: two gloo ranks each write their block of rows and their Gram slot;
the cache reads back equal to the one-rank cache; a rerun resumes per shard."""

import json
import shutil

import torch

from stages.io.feature_store import FeatureCache
from tests.distributed.zero_lib import TASK, dropout_free_backbone, torchrun, write_config


def _compare(a: FeatureCache, b: FeatureCache) -> None:
    assert a.aliases == b.aliases
    for m in a.aliases:
        torch.testing.assert_close(b.rows(m), a.rows(m), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b.gram(m), a.gram(m), atol=1e-6, rtol=1e-5)
        assert b.count(m) == a.count(m)


def test_two_rank_features_equal_one_rank(cli, tmp_path):
    backbone = dropout_free_backbone(tmp_path / "bb")
    one = write_config(tmp_path / "one", backbone, 16, osrm={"k": 13, "batch_size": 4})  # odd k: uneven blocks 7 + 6
    two = write_config(tmp_path / "two", backbone, 16, osrm={"k": 13, "batch_size": 4})
    cli("extract-features", "-c", one, "--task", TASK)
    res = torchrun(2, "extract-features", "--config", two, "--task", TASK)
    assert res.stdout.count("features: ") == 1
    ref_dir, got_dir = one.parent / "runs/features/seed42" / TASK, two.parent / "runs/features/seed42" / TASK
    assert json.loads((got_dir / "manifest.json").read_text())["world"] == 2
    _compare(FeatureCache(ref_dir), FeatureCache(got_dir))


def test_rerun_skips_complete_shards(cli, tmp_path):
    """A crash after the shards were written leaves the staging folder; the rerun only publishes it."""
    backbone = dropout_free_backbone(tmp_path / "bb")
    cfg = write_config(tmp_path / "one", backbone, 16, osrm={"k": 13, "batch_size": 4})
    cli("extract-features", "-c", cfg, "--task", TASK)
    out = cfg.parent / "runs/features/seed42" / TASK
    ref = {m: FeatureCache(out).gram(m) for m in FeatureCache(out).aliases}
    staging = out.parent / f".{TASK}.partial"
    shutil.move(out, staging)
    (staging / "manifest.json").unlink()
    res = cli("extract-features", "-c", cfg, "--task", TASK)
    assert "shard 0 is complete, skipping it" in res.output
    got = FeatureCache(out)
    assert all(torch.equal(got.gram(m), g) for m, g in ref.items())
    # a changed config restarts the staging folder instead of reusing its shards
    shutil.move(out, staging)
    (staging / "manifest.json").unlink()
    cfg.write_text(cfg.read_text().replace("k: 13", "k: 12"))
    res = cli("extract-features", "-c", cfg, "--task", TASK)
    assert "skipping" not in res.output and FeatureCache(out).attrs["k"] == 12
