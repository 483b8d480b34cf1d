"""The CPU benchmarks' pure parts: ratio bookkeeping and the float32-Gram proposal's agreement."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_extract  # noqa: E402  (a script folder, not a package)
import bench_finetune  # noqa: E402

from osrm_core.features import batch_stats  # noqa: E402


def test_finetune_speed_is_trainer_seconds_over_side_seconds():
    runs = {"ours": [{"seconds": 10.0, "cpu_seconds": 4.0, "final_score": 70.0},
                     {"seconds": 30.0, "cpu_seconds": 6.0, "final_score": 80.0}],
            "trainer": [{"seconds": 20.0, "cpu_seconds": 10.0, "final_score": 75.0}]}
    rows = {r["side"]: r for r in bench_finetune.summarise(runs, 100)}
    assert rows["ours"]["cpu_s"] == 5.0 and rows["ours"]["speed_cpu"] == 2.0  # median of 4 and 6; 10 / 5
    assert rows["ours"]["speed_wall"] == 1.0 and rows["trainer"]["speed_cpu"] == 1.0
    assert rows["ours"]["mean_final_score"] == 75.0 and rows["ours"]["examples_per_cpu_s"] == 20.0
    assert "speed vs trainer" in bench_finetune.table(list(rows.values()))


def test_extract_ratio_is_bare_over_side():
    times = {"bare": {"wall": [1.0, 3.0, 2.0], "cpu": [1.0, 1.0, 1.0]}, "capture": {"wall": [4.0], "cpu": [1.25]}}
    rows = {r["side"]: r for r in bench_extract.rows_of(times, 50)}
    assert rows["capture"]["vs_bare_cpu"] == 0.8 and rows["capture"]["vs_bare_wall"] == 0.5
    assert rows["capture"]["rows_per_cpu_s"] == 40.0


@pytest.mark.parametrize("include_padding", [False, True])
def test_float32_batch_gram_proposal_matches_the_float64_product(include_padding):
    torch.manual_seed(0)
    x = torch.randn(4, 9, 16)
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[1, 5:] = 0
    rows, gram, count = batch_stats(x, mask, include_padding)
    rows32, gram32, count32 = bench_extract.batch_stats_fp32_gram(x, mask, include_padding)
    assert torch.equal(rows, rows32) and count == count32 == 32
    assert gram32.dtype == torch.float64
    torch.testing.assert_close(gram32, gram, rtol=1e-6, atol=1e-5)
