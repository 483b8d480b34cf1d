"""What every stage does first: read the config, resolve backbone, tasks and paths, fix seeds."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from osrm_core.backbones import BackboneSpec, check_local, check_max_length, weights_fingerprint
from osrm_core.errors import OsrmError
from osrm_core.models import load_classifier, load_tokenizer, offline_env
from osrm_core.scoring import ClassifierPool
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline import suites
from osrm_pipeline.backbone_registry import load_spec
from osrm_pipeline.layout import Layout
from osrm_pipeline.pipeline_config import PipelineConfig, load_config

SPLITS = ("train", "validation", "test")


@dataclass
class Run:
    cfg: PipelineConfig
    spec: BackboneSpec
    tasks: list[str]
    layout: Layout
    suite: object = None  # the parsed suite (osrm_pipeline.suites.resolve_suite): a shipped suite, a file, or inline
    arm: str | None = None  # the arm this process runs (cfg is then that arm's view: PipelineConfig.for_arm)
    _tasks: dict = field(default_factory=dict, repr=False)

    def check_task(self, task: str) -> str:
        if task not in self.tasks:
            raise OsrmError(f"--task '{task}' is not in this pipeline's tasks {self.tasks} — pick one of those or edit `tasks` in the config")
        return task

    def backbone_identity(self) -> dict:
        return {"name": self.spec.name, "source": self.spec.source, "weights": weights_fingerprint(self.spec)}

    @cached_property
    def tokenizer(self):
        """The backbone's tokenizer, loaded once per process."""
        return load_tokenizer(self.spec)

    @cached_property
    def pool(self) -> ClassifierPool:
        """One model per label count (a causal LM for generative tasks) for scoring many updates in one process
        (osrm_core.scoring)."""
        return ClassifierPool(lambda n: load_classifier(self.spec, n))

    def load_task(self, task: str):
        if task not in self._tasks:  # several models are scored on the same tasks in one process
            self._tasks[task] = self._load_task(task)
        return self._tasks[task]

    def _load_task(self, task: str):
        """(TaskSpec, DatasetDict), checked: no empty split, labels in range, >= 2 classes in train.
        Validation keeps its first data.max_eval rows, test its first data.max_test (default: max_eval)."""
        d = self.cfg.data
        caps = {"validation": d.max_eval, "test": d.max_eval if d.max_test is None else d.max_test}
        widest = None if None in caps.values() else max(caps.values())
        spec, data = suites.load_task(self.suite, task, seed=d.split_seed, data_dir=d.data_dir, max_train=d.max_train, max_eval=widest)
        for split, cap in caps.items():
            if cap is not None and split in data and len(data[split]) > cap:
                data[split] = data[split].select(range(cap))
        where = f"task '{task}' (suite '{self.suite.suite}', data.data_dir={d.data_dir!r})"
        check_task_data(spec, data, where)
        kind_of(spec).check_inputs(spec, data, self.spec, lambda: self.tokenizer, d.max_length, where)
        return spec, data


def check_task_data(spec, data, where: str) -> None:
    """One-line OsrmError for an empty split, labels out of range, or a single-class train split."""
    for split in SPLITS:
        if split not in data:
            raise OsrmError(f"{where}: split '{split}' is missing — the suite must provide {list(SPLITS)}")
        if len(data[split]) == 0:
            raise OsrmError(f"{where}: split '{split}' is empty — check the data files or data.max_train/max_eval")
        kind_of(spec).check_labels(spec, list(data[split]["label"]), split, where)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def open_run(config: Path, overrides: dict | None = None, arm: str | None = None) -> Run:
    """Validated config (as arm `arm` runs it, when given) + backbone spec + task list; every problem is a
    one-line OsrmError."""
    offline_env()
    cfg = load_config(config, overrides)
    if arm is not None:
        cfg = cfg.for_arm(check_arm(cfg, arm, config))
    spec = load_spec(cfg.backbone, project=Path(config).parent)
    spec.target_suffixes(cfg.lora.blocks)
    check_local(spec)
    check_max_length(spec, cfg.data.max_length)
    suite = suites.resolve_suite(cfg.suite, base_dir=Path(config).parent)
    available = suites.list_tasks(suite)
    tasks = cfg.tasks or available
    unknown = [t for t in tasks if t not in available]
    if unknown:
        raise OsrmError(f"{config}: tasks {unknown} are not in suite '{suite.suite}' — valid tasks: {available}")
    if cfg.finetune.threads:
        torch.set_num_threads(cfg.finetune.threads)
    seed_everything(cfg.seed)
    return Run(cfg=cfg, spec=spec, tasks=list(tasks), layout=Layout(Path(cfg.workdir), cfg.seed), suite=suite, arm=arm)


def check_arm(cfg: PipelineConfig, arm: str, config: Path) -> str:
    if arm not in cfg.arms:
        raise OsrmError(f"--arm '{arm}' is not one of the arms {list(cfg.arms)} of {config} — pick one or add it under `arms`")
    return arm
