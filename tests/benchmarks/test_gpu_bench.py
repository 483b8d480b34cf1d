"""benchmarks/gpu_bench.py off the GPU: argument checks, the FLOPs formula, parameter count, script
syntax, and (slow) the whole ZeRO-2 + TIES path on the CPU with a tiny Llama and tiny TIES shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from osrm_core.distributed import free_port

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import gpu_bench  # noqa: E402  (a script folder, not a package)


def test_mfu_is_flops_per_param_times_params_times_rate_over_peak():
    # 1 B params at 100k tokens/s: 6e14 FLOP/s of a 1000 TFLOP/s peak = 60 %; 4N counts 40 %
    assert gpu_bench.mfu(10**9, 1e5, 1000.0) == pytest.approx(0.6)
    assert gpu_bench.mfu(10**9, 1e5, 1000.0, flops_per_param=4) == pytest.approx(0.4)
    assert gpu_bench.H200_BF16_PEAK_TFLOPS == pytest.approx(989.4)


def test_matmul_params_leave_out_the_input_embedding_only():
    from transformers import LlamaConfig, LlamaForSequenceClassification

    model = LlamaForSequenceClassification(LlamaConfig(**gpu_bench.TINY, num_labels=3, pad_token_id=0))
    total = sum(p.numel() for p in model.parameters())
    embed = model.model.embed_tokens.weight.numel()
    assert gpu_bench.matmul_params(model) == total - embed
    assert model.score.weight.numel() == 3 * gpu_bench.TINY["hidden_size"]  # the head is counted


def test_llama_1b_shapes_count_about_one_billion_matmul_params():
    from transformers import LlamaConfig, LlamaForSequenceClassification

    with torch.device("meta"):
        model = LlamaForSequenceClassification(LlamaConfig(**gpu_bench.LLAMA_3_2_1B, num_labels=2))
    n = gpu_bench.matmul_params(model)
    assert 0.97e9 < n < 0.99e9  # 1.236 B published (tied embedding counted once) minus 262.7 M embedding


@pytest.mark.parametrize("argv", [["--models", "llama-70b"], ["--parts", "finetune,merge"], ["--warmup", "0"]])
def test_parse_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit):
        gpu_bench.parse(argv)


def test_parse_defaults_match_the_documented_run():
    a = gpu_bench.parse([])
    assert (a.parts, a.models, a.micro_batch, a.seq, a.ties_layers, a.ties_tasks, a.rank) == (
        "finetune,ties", "llama-1b,smollm2", 8, 512, 32, 8, 8)


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_wheels.sh"])
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", str(BENCH / script)], check=True)


@pytest.mark.slow
def test_cpu_smoke_run_writes_every_number(tmp_path):
    """In its own process: DeepSpeed keeps process-wide group state that later ZeRO tests must not inherit."""
    import os

    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "PYTHONPATH": str(BENCH.parent)}
    out = tmp_path / "gpu.json"
    subprocess.run([sys.executable, str(BENCH / "gpu_bench.py"), "--models", "tiny", "--steps", "2", "--warmup", "1",
                    "--seq", "8", "--micro-batch", "2", "--ties-layers", "1", "--ties-tasks", "3", "--ties-shapes", "tiny",
                    "--json", str(out)], env=env, check=True, capture_output=True)
    rep = json.loads(out.read_text())
    ft = rep["finetune"][0]
    assert ft["tokens_per_s"] > 0 and 0 < ft["mfu_6N"] < 1 and ft["planned_gib"] > 1.5
    assert ft["mfu_6N"] == pytest.approx(1.5 * ft["hw_util_4N"])
    assert rep["ties"]["modules"] == 2 and rep["ties"]["sum_frobenius"] > 0
