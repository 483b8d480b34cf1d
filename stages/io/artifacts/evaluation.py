"""Evaluation artifact: `eval/<model>/` — metrics.json (per-task GLUE metrics, average) and logits.safetensors."""

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
    def hint(model: str) -> str:
        return f"osrm evaluate --model {model}"

    @classmethod
    def open(cls, run, model) -> "Evaluation":
        """Scores of `model` (a ModelRef), checked: this run's split and tasks."""
        art = cls.read(run.layout.evaluation(model), cls.hint(model))
        fix = f"rerun `{cls.hint(model)}`"
        require_same("evaluate.split", run.cfg.evaluate.split, art.manifest.split, art.folder, fix)
        require_same("tasks", run.tasks, art.manifest.tasks, art.folder, fix)
        return art

    @cached_property
    def metrics(self) -> dict:
        """{"model", "split", "tasks": {task: {metric: value, "score": x}}, "average"}."""
        return json.loads((self.folder / METRICS).read_text())
