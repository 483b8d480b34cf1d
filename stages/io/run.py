"""What every stage does first: read the config, resolve backbone, tasks and paths, fix seeds."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from osrm_core import tasks as suites
from osrm_core.backbones import BackboneSpec, load_spec, weights_fingerprint
from osrm_core.config import PipelineConfig, load_config
from osrm_core.errors import OsrmError
from osrm_core.models import offline_env
from stages.io.layout import Layout


@dataclass
class Run:
    cfg: PipelineConfig
    spec: BackboneSpec
    tasks: list[str]
    layout: Layout

    def check_task(self, task: str) -> str:
        if task not in self.tasks:
            raise OsrmError(f"--task '{task}' is not in this pipeline's tasks {self.tasks} — pick one of those or edit `tasks` in the config")
        return task

    def backbone_identity(self) -> dict:
        return {"name": self.spec.name, "source": self.spec.source, "weights": weights_fingerprint(self.spec)}

    def load_task(self, task: str, seed: int | None = None):
        d = self.cfg.data
        return suites.load_task(self.cfg.suite, task, seed=self.cfg.seed if seed is None else seed,
                                data_dir=d.data_dir, max_train=d.max_train, max_eval=d.max_eval)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def open_run(config: Path, overrides: dict | None = None) -> Run:
    """Validated config + backbone spec + task list; every problem is a one-line OsrmError."""
    offline_env()
    cfg = load_config(config, overrides)
    spec = load_spec(cfg.backbone if not cfg.backbone.endswith((".yaml", ".yml")) else str(Path(cfg.backbone)))
    spec.target_suffixes(cfg.lora.blocks)
    available = suites.list_tasks(cfg.suite)
    tasks = cfg.tasks or available
    unknown = [t for t in tasks if t not in available]
    if unknown:
        raise OsrmError(f"{config}: tasks {unknown} are not in suite '{cfg.suite}' — valid tasks: {available}")
    if cfg.finetune.threads:
        torch.set_num_threads(cfg.finetune.threads)
    seed_everything(cfg.seed)
    return Run(cfg=cfg, spec=spec, tasks=list(tasks), layout=Layout(Path(cfg.workdir)))
