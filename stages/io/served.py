"""What a `--model` serves: each task's adapter (its head, and the arm's adapters a merge must come from; the
pretrained body borrows only the heads it lacks), the merge when it is one, and the body update each task gets
(evaluate, select, export and predict share these; how a task is scored under it is osrm_pipeline/task_scores.py)."""

from __future__ import annotations

import torch

from osrm_core.errors import OsrmError
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline.layout import ModelRef, parse_models
from stages.io.adapters import individual_delta
from stages.io.artifacts import Merged, TaskAdapter


def one_model(run, text: str, allow_base: bool = False) -> ModelRef:
    """The single model `text` names (parse_models' grammar; no '<arm>/merges'; 'base' only if allowed)."""
    refs = parse_models([text], list(run.cfg.arms), list(run.cfg.merge.methods))
    if len(refs) != 1 or (refs[0].kind == "base" and not allow_base):
        raise OsrmError(f"--model '{text}': name one model, '<arm>/individual' or '<arm>/<method>'"
                        + (" or 'base'" if allow_base else " (the pretrained body has nothing to export)"))
    return refs[0]


def open_model(run, ref: ModelRef, tasks: list[str] | None = None) -> tuple[dict[str, TaskAdapter], Merged | None]:
    """Every task's adapter of the model's arm and the merge, checked against those adapters (it must have been
    merged from them). The pretrained body ('base') opens adapters only for their heads: a task whose kind has a
    head (classification) borrows the reference arm's; a head-less (generative) task is the prompted backbone
    alone, zero-shot, and has no entry, so the base needs no fine-tune at all. `tasks` limits the heads the base
    opens (default: every task); an arm's model always opens every task's adapter."""
    if ref.kind == "base":
        wanted = run.tasks if tasks is None else tasks
        return {t: _borrowed_head(run, t) for t in wanted if kind_of(run.load_task(t)[0]).has_head}, None
    adapters = {t: TaskAdapter.open(run, ref.arm, t) for t in run.tasks}
    merged = Merged.open(run, ref.arm, ref.method, {t: a.content_hash for t, a in adapters.items()}) if ref.kind == "merge" else None
    return adapters, merged


def _borrowed_head(run, task: str) -> TaskAdapter:
    """The reference arm's adapter of a classification task: the base model is scored with its head."""
    try:
        return TaskAdapter.open(run, run.cfg.reference, task)
    except OsrmError as err:
        raise OsrmError(f"--model base: task '{task}' needs a classifier head, which the pretrained body lacks; it is "
                        f"taken from the reference arm '{run.cfg.reference}' (`reference`), whose adapter is not usable: "
                        f"{err}") from None


def task_head(adapters: dict[str, TaskAdapter], task: str) -> dict[str, torch.Tensor]:
    """The head `task` is served with ({} for a head-less task of the pretrained body)."""
    return adapters[task].peft.head() if task in adapters else {}


def body_update(model: ModelRef, task: str, adapters: dict[str, TaskAdapter], merged: Merged | None) -> dict[str, torch.Tensor]:
    """{module: update (d_out x d_in)} of the target modules that `model` serves `task` ({} for the pretrained body)."""
    if model.kind == "base":
        return {}
    if model.kind == "individual":
        return individual_delta(adapters[task].peft)
    return merged.deltas(task)
