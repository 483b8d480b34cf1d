"""Helpers for the reliability tests: snapshots, synthetic adapters, private workdir copies."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch
import yaml

from tests.conftest import TINY_TASKS, Cli, tiny_pipeline


def snapshot(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (hidden ones too)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def leftovers(root: Path) -> list[str]:
    """Temporary or swapped-out siblings that an atomic write must never leave behind."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if ".tmp-" in p.name or ".old-" in p.name)


def write_adapter(root: Path, arm: str, task: str, cfg_path: Path, rank: int = 4, blocks: str = "qv",
                  weights: str | None = None, seed: int = 0) -> Path:
    """A synthetic PEFT LoRA adapter + finetune manifest for `task`, shaped like the tiny BERT's."""
    from osrm_pipeline.run import open_run
    from stages.io.adapters import write_lora
    from stages.io.artifacts import TaskAdapter
    from stages.io.atomic import atomic_dir

    run = open_run(cfg_path)
    suffixes = tuple(run.spec.target_suffixes(blocks))
    modules = [f"bert.encoder.layer.{i}.attention.self.{s}" for i in range(2) for s in suffixes]
    g = torch.Generator().manual_seed(seed + 7 * TINY_TASKS.index(task))
    factors = {m: (torch.randn(rank, 32, generator=g), torch.randn(32, rank, generator=g)) for m in modules}
    head = {"classifier.weight": torch.randn(2, 32, generator=g), "classifier.bias": torch.zeros(2)}
    template = {"peft_type": "LORA", "target_modules": list(suffixes), "modules_to_save": ["classifier"],
                "base_model_name_or_path": run.spec.source, "bias": "none", "lora_dropout": 0.0, "task_type": None}
    identity = run.backbone_identity()
    if weights:
        identity = {**identity, "weights": weights}
    out = run.layout.adapter(arm, task)
    with atomic_dir(out) as tmp:
        write_lora(tmp, factors, head, template, rank, 2.0 * rank)
        TaskAdapter.seal(tmp, {"task": task, "arm": arm, "seed": run.cfg.seed}, upstream={}, backbone=identity, arm=arm,
                         task=task, init=run.cfg.arms[arm].init, rank=rank, blocks=blocks, num_labels=2)
    return out


class Work:
    """A private copy of the base workdir plus its pipeline.yaml; `config(**overrides)` rewrites it."""

    def __init__(self, tmp: Path, base: Path, backbone: Path):
        self.tmp, self.backbone = tmp, backbone
        self.root = tmp / "runs"
        shutil.copytree(base / "runs", self.root, symlinks=True)
        self.cfg = tmp / "pipeline.yaml"
        self.config()

    def config(self, **overrides) -> Path:
        cfg = tiny_pipeline(self.root, self.backbone)
        for key, value in overrides.items():
            cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
        self.cfg.write_text(yaml.safe_dump(cfg))
        return self.cfg
