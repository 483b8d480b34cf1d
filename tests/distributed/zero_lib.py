"""Helpers for multi-rank CPU tests: a dropout-free tiny BERT, pipeline configs, torchrun subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from osrm_core.distributed import free_port
from tests.conftest import save_tiny, tiny_pipeline

REPO = Path(__file__).resolve().parents[2]
TASK = "movie_sentiment"


def dropout_free_backbone(root: Path, family: str = "encoder") -> Path:
    """A tiny random model without dropout, so one rank and several see identical forward passes."""
    spec = save_tiny(root / "model", family)
    cfg_path = root / "model" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout_rate", "attention_dropout", "classifier_dropout"):
        if key in cfg or key == "classifier_dropout":
            cfg[key] = 0.0
    cfg_path.write_text(json.dumps(cfg))
    path = root / "backbone.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def write_config(folder: Path, backbone: Path, batch_size: int, deepspeed: str | None = None,
                 checkpointing: bool = False, **extra) -> Path:
    """pipeline.yaml for one task; `batch_size` is per rank (2 ranks x 8 == 1 rank x 16)."""
    extra["data"] = {"max_train": 32, "max_eval": 16, **extra.get("data", {})}
    cfg = tiny_pipeline(folder / "runs", backbone, tasks=[TASK],
                        finetune={"batch_size": batch_size, "deepspeed": deepspeed, "epochs": 2, "threads": 1,
                                  "gradient_checkpointing": checkpointing}, **extra)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def torchrun(nproc: int, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node N -m stages.cli ...` on a free port (gloo on CPU)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OSRM_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "stages.cli", *map(str, args)]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


def adapter(config: Path, init: str = "lora") -> dict:
    return load_file(config.parent / "runs" / "adapters" / "seed42" / init / TASK / "adapter_model.safetensors")


def zero_config(folder: Path, stage: int) -> Path:
    """The shipped configs/deepspeed/zero<stage>.json; ZeRO-3 with persistence threshold 0 so that even the
    tiny model's LoRA/head tensors are partitioned (the save path must gather them)."""
    cfg = json.loads((REPO / "configs" / "deepspeed" / f"zero{stage}.json").read_text())
    if stage == 3:
        cfg["zero_optimization"]["stage3_param_persistence_threshold"] = 0
    path = folder / f"zero{stage}.json"
    path.write_text(json.dumps(cfg))
    return path


def check_zero_matches_single(cli, tmp_path: Path, stage: int) -> None:
    """Two gloo ranks x batch 8 under ZeRO-<stage> == one process x batch 16 (plain torch), up to float noise.
    ZeRO-2 also recomputes activations (gradient checkpointing), which is exact without dropout."""
    backbone = dropout_free_backbone(tmp_path / "bb")
    single = write_config(tmp_path / "single", backbone, 16)
    cli("finetune", "-c", single, "--task", TASK, "--arm", "lora")
    two = write_config(tmp_path / "two", backbone, 8, str(zero_config(tmp_path, stage)), checkpointing=stage == 2)
    res = torchrun(2, "finetune", "-c", two, "--task", TASK, "--arm", "lora")
    assert res.stdout.count("adapter: ") == 1, "only rank 0 writes the artifact"
    ref, got = adapter(single), adapter(two)
    assert set(ref) == set(got)
    assert all(t.numel() > 0 for t in got.values()), "ZeRO-3 must gather partitions before saving"
    lora_b = [k for k in got if "lora_B" in k]
    assert lora_b and all(got[k].abs().max() > 0 for k in lora_b), "training moved B"
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=2e-4, rtol=1e-3, msg=lambda m: f"{k}: {m}")
    info = json.loads((two.parent / "runs/adapters/seed42/lora" / TASK / "training.json").read_text())
    assert info["world_size"] == 2 and info["zero_stage"] == stage
