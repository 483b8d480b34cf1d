"""`osrm evaluate`: score the base model, the individual adapters or a merge on every task (GLUE metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer

from osrm_core import distributed
from osrm_core.batching import iterate, length_sorted
from osrm_core.scoring import metrics_of
from osrm_core.train import predict
from stages.io.tensors import save_file
from stages.io.adapters import individual_delta
from stages.io.artifacts import Evaluation, Merged, TaskAdapter
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.layout import ModelRef, parse_models
from stages.io.options import CONFIG, SEED, WORKDIR, run_overrides
from stages.io.run import Run, open_run

MODEL = typer.Option(..., "--model", help="What to score: 'base' (pretrained body, each task's head), '<arm>/individual', "
                     "'<arm>/<method>', or '<arm>/merges' (every method of merge.methods). Repeat to score several in one process.")


def body_update(run: Run, model: ModelRef, task: str, merged: Merged | None) -> tuple[dict, str]:
    """The update of the target modules under `model` for `task`, and the arm whose head serves it
    (the pretrained body is served with the heads of the reference arm)."""
    if model.kind == "base":
        return {}, run.cfg.reference
    if model.kind == "individual":
        return individual_delta(TaskAdapter.open(run, model.arm, task).peft), model.arm
    return merged.deltas(task), model.arm


def task_batches(run: Run, task: str, split: str, world, cache: dict) -> tuple[list, list[int], np.ndarray]:
    """(tokenised batches of this rank's block, length-sorted order, labels (n,)), made once per task."""
    if task not in cache:
        spec, data = run.load_task(task)
        ds, tokenizer = data[split], run.tokenizer
        order = length_sorted(tokenizer, ds, spec.text_fields)
        start, stop = distributed.block(len(order), world.rank, world.size)
        batches = list(iterate(tokenizer, ds, spec.text_fields, run.cfg.evaluate.batch_size, run.cfg.data.max_length, order[start:stop]))
        cache[task] = (batches, order, torch.as_tensor(list(ds["label"])).numpy())
    return cache[task]


def score_task(run: Run, task: str, update: dict, head: dict, split: str, world=distributed.World(), cache: dict | None = None):
    """(metrics, logits n x num_labels) of one task under a body update and a head.

    Under several ranks each predicts its contiguous block of the length-sorted order and the blocks
    are gathered (every rank gets the whole tensor)."""
    spec, _ = run.load_task(task)
    batches, order, labels = task_batches(run, task, split, world, {} if cache is None else cache)
    model = run.pool.get(spec.num_labels, update, head)
    part = predict(model, iter(batches))
    logits = torch.cat([p for p in distributed.gather_objects(part, world) if p.numel()])
    restore = torch.empty_like(logits)
    restore[torch.as_tensor(order)] = logits  # back to dataset order
    return metrics_of(spec, restore, labels), restore


@guarded
def main(config: Path = CONFIG, model: list[str] = MODEL, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Per-task metrics (docs/evaluation.md) of MODEL on the configured split; writes eval/<model>/metrics.json + logits.

    Under torchrun (RANK/WORLD_SIZE set) the ranks split each task's examples, the logits are gathered
    and rank 0 scores and writes.
    """
    run = open_run(config, run_overrides(workdir, seed))
    models = parse_models(model, list(run.cfg.arms), list(run.cfg.merge.methods))
    world = distributed.world_from_env()
    created = distributed.init(world)
    batches: dict = {}  # task -> tokenised batches, shared by every model scored in this process
    try:
        for ref in models:
            _evaluate(run, ref, world, batches)
    finally:
        if created:
            distributed.destroy()


def _evaluate(run: Run, model: ModelRef, world, batches: dict) -> None:
    split = run.cfg.evaluate.split
    results, logits, upstream = {}, {}, {}
    heads = {t: TaskAdapter.open(run, model.arm or run.cfg.reference, t) for t in run.tasks}
    merged = Merged.open(run, model.arm, model.what, {t: a.content_hash for t, a in heads.items()}) if model.kind == "merge" else None
    for task in progress(run.tasks, f"evaluate {model}"):
        update, _ = body_update(run, model, task, merged)
        upstream[task] = heads[task].content_hash
        results[task], logits[task] = score_task(run, task, update, heads[task].peft.head(), split, world, batches)
    if not world.main:
        return
    if merged is not None:
        upstream["merge"] = merged.content_hash
    avg = sum(r["score"] for r in results.values()) / len(results)
    out = run.layout.evaluation(model)
    with atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps({"model": str(model), "split": split, "tasks": results, "average": avg}, indent=1, sort_keys=True) + "\n")
        save_file(logits, tmp / "logits.safetensors")
        Evaluation.seal(tmp, {"model": str(model), "split": split, "tasks": run.tasks, "data": run.cfg.data.model_dump()},
                        upstream=upstream, model=str(model), split=split, tasks=run.tasks)
    print(f"evaluate {model}: average {avg:.2f} over {len(results)} tasks -> {out}/metrics.json")
