"""What a task is: its text fields, label space and metric (GLUE-shaped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Metric = Literal["accuracy", "accuracy_f1", "matthews", "pearson_spearman"]


@dataclass(frozen=True)
class TaskSpec:
    """A sequence-classification task.

    name: unique key inside its suite, e.g. ``"sst2"``.
    text_fields: one column name (single sentence) or two (sentence pair), in model input order.
    num_labels: number of classes; 1 means regression (float labels).
    metric: how the task is scored (docs/evaluation.md); a task's score is the mean of its metric values.
    label_names: optional human-readable class names (len == num_labels for classification).
    """

    name: str
    text_fields: tuple[str, ...]
    num_labels: int
    metric: Metric
    label_names: tuple[str, ...] = ()
    description: str = ""

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1
