"""The task-kind registry: how a kind of task is trained, scored and captured (one entry per kind).

A :class:`TaskSpec` names its kind (``spec.kind``); every stage asks :func:`kind_of` for the behaviour instead
of testing what the task is:

- ``classification``: a sequence classifier with a task head (classes or a regression score);
- ``generative``: a causal LM without head, prompt -> target (docs/own_tasks.md, "Generative tasks").

Serving (``osrm export`` / ``osrm predict``, docs/serving.md): ``skeleton`` is the task's model on the meta device
(shapes, head names: what an imported adapter must fit), ``standalone`` the model with an update folded in (what
an export folder holds), ``serve`` the prediction records of new rows (a label with probabilities, a value, or
generated text).

Scores per row (``predict``): classification logits (n x num_labels); generative label-likelihood scores of
the choices (n x choices) or a per-row exact-match / token-F1 score (n x 1). ``predictions`` turns them into
the (n,) predictions that the metrics (osrm_core.metrics) and the paired statistics (osrm_core.stats) read.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from osrm_core.backbones import BackboneSpec
from osrm_core.kinds.classification import Classification
from osrm_core.kinds.generative import Generative
from osrm_core.tasks.spec import TaskSpec


class TaskKind(Protocol):
    """What a stage asks of a task's kind. ``ds`` is one split (columns: text fields + label), ``order`` row indices."""

    peft_task_type: str | None  # PEFT's task_type of the adapters (None: the pipeline's own classifier wrapping)
    serving_padding_side: str  # the exported tokenizer's padding side for transformers pipelines
    has_head: bool  # a trained task head (the pretrained body borrows the reference arm's); False: the body alone scores

    def check_labels(self, spec: TaskSpec, labels: list, split: str, where: str) -> None: ...
    def check_inputs(self, spec: TaskSpec, data, backbone: BackboneSpec, tokenizer: Callable[[], Any], max_length: int,
                     where: str) -> None: ...
    def load_model(self, backbone: BackboneSpec, spec: TaskSpec) -> nn.Module: ...
    def skeleton(self, backbone: BackboneSpec, spec: TaskSpec) -> nn.Module: ...
    def standalone(self, backbone: BackboneSpec, spec: TaskSpec, tokenizer, data, update: dict, head: dict) -> nn.Module: ...
    def serve(self, model: nn.Module, tokenizer, spec: TaskSpec, data, rows: dict[str, list[str]], batch_size: int,
              max_length: int, where: str, track: Callable[[Iterable, int | None], Iterable]) -> list[dict]: ...
    def model_key(self, spec: TaskSpec) -> Hashable: ...
    def heads(self, model: nn.Module) -> list[str]: ...
    def train_lengths(self, tokenizer, ds, spec: TaskSpec, max_length: int) -> list[int]: ...
    def train_batches(self, tokenizer, ds, spec: TaskSpec, batch_size: int, max_length: int,
                      order: list[int]) -> Iterator[tuple[dict, torch.Tensor]]: ...
    def loss(self, model: nn.Module, inputs: dict, labels: torch.Tensor) -> torch.Tensor: ...
    def feature_batches(self, tokenizer, ds, spec: TaskSpec, batch_size: int, max_length: int,
                        pad_to_max: bool) -> Iterator[tuple[dict, Any]]: ...
    def eval_order(self, tokenizer, ds, spec: TaskSpec, max_length: int) -> list[int]: ...
    def eval_batches(self, tokenizer, data, split: str, spec: TaskSpec, batch_size: int, max_length: int,
                     order: list[int]) -> Iterator: ...
    def predict(self, model: nn.Module, batches: Iterable, device: str = "cpu", bf16: bool = False) -> torch.Tensor: ...
    def labels(self, spec: TaskSpec, ds) -> np.ndarray: ...
    def predictions(self, spec: TaskSpec, scores: np.ndarray) -> np.ndarray: ...
    def fisher_batches(self, tokenizer, ds, spec: TaskSpec, batch_size: int, max_length: int, order: list[int]) -> Iterable: ...
    def fisher_objective(self, spec: TaskSpec) -> Callable | None: ...


KINDS: dict[str, TaskKind] = {"classification": Classification(), "generative": Generative()}


def kind_of(spec: TaskSpec) -> TaskKind:
    """The behaviour of ``spec``'s kind."""
    return KINDS[spec.kind]


def metrics(spec: TaskSpec, scores: torch.Tensor, labels: np.ndarray) -> dict:
    """The task's metric values (percent) and `score`, from per-row scores in dataset order (docs/evaluation.md)."""
    from osrm_core.metrics import compute

    return compute(spec.metric, kind_of(spec).predictions(spec, scores.numpy()), labels)
