"""Evaluation artifact: `eval/seed<S>/base/`, `eval/seed<S>/individual/<arm>/` or `eval/seed<S>/merged/<arm>/<method>/` — metrics.json (per-task GLUE metrics, average) and logits.safetensors."""

from __future__ import annotations

import json
from functools import cached_property
from typing import ClassVar

from stages.io.artifacts.base import Artifact
from stages.io.manifest import Manifest, require_same

METRICS = "metrics.json"


class EvaluationManifest(Manifest):
    STAGE: ClassVar[str] = "evaluate"
    model: str
    split: str
    tasks: list[str]


class Evaluation(Artifact[EvaluationManifest]):
    Manifest = EvaluationManifest

    @staticmethod
    def path(layout, model):
        return layout.evaluation(model)

    @staticmethod
    def hint(model, seed: int) -> str:
        return f"osrm evaluate --model {model} --seed {seed}"

    def check(self, run, model) -> None:
        """Scores of `model` (a ModelRef) on this run's split and tasks."""
        fix = self.fix(model)
        require_same("evaluate.split", run.cfg.evaluate.split, self.manifest.split, self.folder, fix)
        require_same("tasks", run.tasks, self.manifest.tasks, self.folder, fix)

    @cached_property
    def metrics(self) -> dict:
        """{"model", "split", "tasks": {task: {metric: value, "score": x}}, "average"}."""
        return json.loads((self.folder / METRICS).read_text())
