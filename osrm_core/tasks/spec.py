"""What a task is: its text fields, label space and metric (GLUE-shaped), or its prompt and target (generative)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Metric = Literal["accuracy", "accuracy_f1", "matthews", "pearson_spearman", "exact_match", "token_f1", "rouge_l"]
#: metrics of a generative task without choices: the mean of a per-row score in [0, 1] (docs/evaluation.md)
ROW_MEAN_METRICS = ("exact_match", "token_f1", "rouge_l")


@dataclass(frozen=True)
class Generation:
    """How a generative task writes a row as a prompt and a target (docs/own_tasks.md, "Generative tasks").

    prompt: a ``str.format`` template over the row's columns, e.g. ``"Review: {review}\\nSentiment:"``.
    target: the column holding the completion the adapter learns.
    choices: label words; when given the target is one of them and rows are scored by label likelihood.
    chat_template: wrap the prompt as a user turn with the tokenizer's chat template.
    separator: text between the prompt and the target (lm-eval's target_delimiter).
    """

    prompt: str
    target: str
    choices: tuple[str, ...] = ()
    chat_template: bool = False
    separator: str = " "


@dataclass(frozen=True)
class TaskSpec:
    """A sequence-classification task, or a generative one when ``generation`` is set.

    name: unique key inside its suite, e.g. ``"sst2"``.
    text_fields: one column name (single sentence) or two (sentence pair), in model input order; for a
        generative task the columns its prompt template names, in order of appearance.
    num_labels: number of classes; 1 means regression (float labels); a generative task: its number of
        choices, 0 for free text.
    metric: how the task is scored (docs/evaluation.md); a task's score is the mean of its metric values.
    label_names: optional human-readable class names (len == num_labels for classification; the choices).
    """

    name: str
    text_fields: tuple[str, ...]
    num_labels: int
    metric: Metric
    label_names: tuple[str, ...] = ()
    description: str = ""
    generation: Generation | None = None

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1 and self.generation is None

    @property
    def kind(self) -> str:
        """Key of osrm_core.tasks.kinds.KINDS: how the task is trained, scored and captured."""
        return "classification" if self.generation is None else "generative"
