"""The tasks' diagonal Fishers of `fisher` merging as the config asks (merge.fisher_samples, fisher_batch_size,
fisher_labels, the run's seed): what each task's Fisher is computed on, and the computation into a folder
(osrm_core.merge.engine.task_fishers; docs/merging.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from osrm_core.apply import add_deltas, load_head
from osrm_core.batching import shuffled
from osrm_core.merge.engine import FisherTask, task_fishers
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline.run import Run

#: () -> ({module: dW (d_out x d_in)}, head tensors) of one task's adapter, read when its model is built
Update = Callable[[], tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]


def fisher_task(run: Run, task: str, update: Update) -> FisherTask:
    """Task `task`'s model (W0 + dW, its own head) and a seeded sample of merge.fisher_samples train rows."""
    cfg = run.cfg
    spec, data = run.load_task(task)
    ds, kind = data["train"], kind_of(spec)
    order = shuffled(len(ds), cfg.seed)[: cfg.merge.fisher_samples]

    def model():
        m = kind.load_model(run.spec, spec)
        delta, head = update()
        add_deltas(m, delta)
        load_head(m, head)
        return m

    batches = lambda: kind.fisher_batches(run.tokenizer, ds, spec, cfg.merge.fisher_batch_size,  # noqa: E731
                                          cfg.data.max_length, order)
    return FisherTask(model, batches, spec.is_regression, kind.fisher_objective(spec))


def fisher_files(run: Run, updates: dict[str, Update], modules: list[str], folder: Path,
                 progress=lambda it, desc: it) -> dict[str, Path]:
    """task -> folder/fisher-<task>.safetensors: the diagonal Fisher (d_out x d_in float32) per target module."""
    tasks = {t: fisher_task(run, t, u) for t, u in updates.items()}
    return task_fishers(tasks, modules, run.cfg.merge.fisher_labels, run.cfg.seed, folder, progress)
