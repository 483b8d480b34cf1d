"""How one task of a run is scored under a body update and a head (evaluate, select, diagnose and predict share it):
the run's pooled model of the task's kind, length-sorted batches of a split made once per task, predictions
gathered over ranks and put back in input order."""

from __future__ import annotations

import numpy as np
import torch

from osrm_core import distributed
from osrm_core.batching import in_input_order
from osrm_core.tasks.kinds import kind_of, metrics
from osrm_pipeline.run import Run


def task_model(run, spec, update: dict[str, torch.Tensor], head: dict[str, torch.Tensor]):
    """The run's shared model of `spec`'s kind (a classifier per label count, one causal LM) with W0 + update and
    the head: valid until the pool's next `get` of the same kind."""
    kind = kind_of(spec)
    return run.pool.get(kind.model_key(spec), update, head, load=lambda: kind.load_model(run.spec, spec))


def task_batches(run: Run, task: str, split: str, world, cache: dict) -> tuple[list, list[int], np.ndarray]:
    """(tokenised batches of this rank's block, length-sorted order, labels (n,)), made once per task."""
    if task not in cache:
        spec, data = run.load_task(task)
        ds, tokenizer, kind, max_length = data[split], run.tokenizer, kind_of(spec), run.cfg.data.max_length
        order = kind.eval_order(tokenizer, ds, spec, max_length)
        start, stop = distributed.block(len(order), world.rank, world.size)
        batches = list(kind.eval_batches(tokenizer, data, split, spec, run.cfg.evaluate.batch_size, max_length, order[start:stop]))
        cache[task] = (batches, order, kind.labels(spec, ds))
    return cache[task]


def score_task(run: Run, task: str, update: dict, head: dict, split: str, world=distributed.World(), cache: dict | None = None):
    """(metrics, per-row scores n x c) of one task under a body update and a head: a classifier's logits
    (n x num_labels), a generative task's choice log-likelihoods or generation scores (osrm_core.tasks.kinds).

    Under several ranks each predicts its contiguous block of the length-sorted order and the blocks
    are gathered (every rank gets the whole tensor)."""
    spec, _ = run.load_task(task)
    kind = kind_of(spec)
    batches, order, labels = task_batches(run, task, split, world, {} if cache is None else cache)
    part = kind.predict(task_model(run, spec, update, head), batches)
    logits = in_input_order(torch.cat([p for p in distributed.gather_objects(part, world) if p.numel()]), order)
    return metrics(spec, logits, labels), logits
