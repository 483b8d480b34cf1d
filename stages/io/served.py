"""What a `--model` serves: each task's adapter (its head, and the arm's adapters a merge must come from),
the merge when it is one, and the body update each task gets (evaluate, select, export and predict share these;
how a task is scored under it is osrm_pipeline/task_scores.py)."""

from __future__ import annotations

import torch

from osrm_core.errors import OsrmError
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


def open_model(run, ref: ModelRef) -> tuple[dict[str, TaskAdapter], Merged | None]:
    """Every task's adapter of the model's arm (the pretrained body is served with the reference arm's heads)
    and the merge, checked against those adapters (it must have been merged from them)."""
    heads = {t: TaskAdapter.open(run, ref.arm or run.cfg.reference, t) for t in run.tasks}
    merged = Merged.open(run, ref.arm, ref.what, {t: a.content_hash for t, a in heads.items()}) if ref.kind == "merge" else None
    return heads, merged


def body_update(model: ModelRef, task: str, heads: dict[str, TaskAdapter], merged: Merged | None) -> dict[str, torch.Tensor]:
    """{module: update (d_out x d_in)} of the target modules that `model` serves `task` ({} for the pretrained body)."""
    if model.kind == "base":
        return {}
    if model.kind == "individual":
        return individual_delta(heads[task].peft)
    return merged.deltas(task)
