"""`osrm evaluate`: score the base model, the individual adapters or a merge on every task (GLUE metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer
from safetensors.torch import save_file

from osrm_core import distributed
from osrm_core.batching import iterate, length_sorted
from osrm_core.errors import OsrmError
from osrm_core.metrics import compute, predictions
from osrm_core.train import predict
from stages.io.adapters import individual_delta
from stages.io.adapters import Adapter
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.manifest import read_manifest, write_manifest
from stages.io.options import CONFIG, WORKDIR
from stages.io.run import Run, open_run
from stages.io.shards import read_sharded

MODEL = typer.Option(..., "--model", help="What to score: 'base' (pretrained body, each task's head), '<init>/individual', "
                     "'<init>/<method>', or '<init>/merges' (every method of merge.methods). Repeat to score several in one process.")


def body_update(run: Run, model: str, task: str, merged_cache: dict) -> tuple[dict, str]:
    """The update of the target modules under `model` for `task`, and the init whose head serves it."""
    if model == "base":
        return {}, run.cfg.inits[0]
    init, _, what = model.partition("/")
    if init not in ("gaussian", "osrm") or not what:
        raise OsrmError(f"--model '{model}': expected 'base', '<init>/individual' or '<init>/<method>' with init gaussian|osrm")
    if what == "individual":
        return individual_delta(Adapter(run.layout.adapter(init, task))), init
    if not merged_cache:
        folder = run.layout.merged(init, what)
        merged_cache["manifest"] = read_manifest(folder, "merge", f"osrm merge --init {init} --method {what}")
        merged_cache["delta"] = merged_delta(folder, merged_cache["manifest"])
    delta = merged_cache["delta"]
    if merged_cache["manifest"]["per_task"]:
        return {k.split("::", 1)[1]: v for k, v in delta.items() if k.startswith(f"{task}::")}, init
    return {k: v for k, v in delta.items() if "::" not in k}, init


def merged_delta(folder: Path, manifest: dict) -> dict[str, torch.Tensor]:
    if manifest["low_rank"]:
        return individual_delta(Adapter(folder))
    return read_sharded(folder, "delta")


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
    return compute(spec.metric, predictions(restore.numpy(), spec.is_regression), labels), restore


@guarded
def main(config: Path = CONFIG, model: list[str] = MODEL, workdir: Path = WORKDIR) -> None:
    """Per-task metrics (DESIGN.md §4) of MODEL on the configured split; writes eval/<model>/metrics.json + logits.

    Under torchrun (RANK/WORLD_SIZE set) the ranks split each task's examples, the logits are gathered
    and rank 0 scores and writes.
    """
    run = open_run(config, {"workdir": str(workdir) if workdir else None})
    world = distributed.world_from_env()
    created = distributed.init(world)
    batches: dict = {}  # task -> tokenised batches, shared by every model scored in this process
    try:
        for name in expand_models(run, model):
            _evaluate(run, name, world, batches)
    finally:
        if created:
            distributed.destroy()


def expand_models(run: Run, models: list[str]) -> list[str]:
    """'<init>/merges' -> '<init>/<method>' for every configured method; others unchanged, order kept."""
    out = []
    for m in models:
        init, _, what = m.partition("/")
        out += [f"{init}/{meth}" for meth in run.cfg.merge.methods] if what == "merges" else [m]
    return list(dict.fromkeys(out))


def _evaluate(run: Run, model: str, world, batches: dict) -> None:
    split = run.cfg.evaluate.split
    results, logits, upstream, cache = {}, {}, {}, {}
    for task in progress(run.tasks, f"evaluate {model}"):
        update, head_init = body_update(run, model, task, cache)
        head_folder = run.layout.adapter(head_init, task)
        upstream[task] = read_manifest(head_folder, "finetune", f"osrm finetune --task {task} --init {head_init}")["content_hash"]
        results[task], logits[task] = score_task(run, task, update, Adapter(head_folder).head(), split, world, batches)
    if not world.main:
        return
    if cache:
        upstream["merge"] = cache["manifest"]["content_hash"]
    avg = sum(r["score"] for r in results.values()) / len(results)
    out = run.layout.evaluation(model)
    with atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps({"model": model, "split": split, "tasks": results, "average": avg}, indent=1, sort_keys=True) + "\n")
        save_file(logits, tmp / "logits.safetensors")
        write_manifest(tmp, "evaluate", {"model": model, "split": split, "tasks": run.tasks, "data": run.cfg.data.model_dump()},
                       upstream=upstream, model=model)
    print(f"evaluate {model}: average {avg:.2f} over {len(results)} tasks -> {out}/metrics.json")
