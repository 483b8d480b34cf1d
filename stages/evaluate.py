"""`osrm evaluate`: score the base model, the individual adapters or a merge on every task (GLUE metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from osrm_core import distributed
from osrm_pipeline.layout import ModelRef, parse_models
from osrm_pipeline.run import Run, open_run
from osrm_pipeline.task_scores import score_task
from stages.io.artifacts import Evaluation
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.options import CONFIG, SEED, WORKDIR, run_overrides
from stages.io.served import body_update, open_model, task_head
from stages.io.tensors import save_file

MODEL = typer.Option(..., "--model", help="What to score: 'base' (the pretrained body: a classification task with the reference "
                     "arm's head, a generative task zero-shot, no adapter), '<arm>/individual', '<arm>/<method>', or "
                     "'<arm>/merges' (every method of merge.methods); 'all' as the arm = every arm ('all/individual'). "
                     "Repeat to score several in one process.")


@guarded(preload=("transformers.modeling_utils",))  # imported when the model loads anyway: start-up, not work
def main(config: Path = CONFIG, model: list[str] = MODEL, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Per-task metrics (docs/evaluation.md) of MODEL on the configured split; writes eval/seed<S>/... (Layout.evaluation) metrics.json + logits.

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
    adapters, merged = open_model(run, model)
    for task in progress(run.tasks, f"evaluate {model}"):
        update = body_update(model, task, adapters, merged)
        if task in adapters:  # the base model of a head-less (generative) task is the backbone alone
            upstream[task] = adapters[task].content_hash
        results[task], logits[task] = score_task(run, task, update, task_head(adapters, task), split, world, batches)
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
