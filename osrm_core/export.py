"""What an exported or served model is made of: a plain classifier with the update folded in (W = W0 + Δ, the
task's head, labels named), its predictions as records, and serving LoRA factors with at most `max_rank`
components per module.

docs/serving.md describes the folders these build and what truncation loses.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from osrm_core.apply import add_deltas, load_head
from osrm_core.merge.lowrank import truncate
from osrm_core.merge.types import MergeResult


def label_names(spec) -> list[str]:
    """Label i's name: the suite's class names where it gives one per class, else LABEL_i; 'score' for regression."""
    if spec.is_regression:
        return ["score"]
    return list(spec.label_names) if len(spec.label_names) == spec.num_labels else [f"LABEL_{i}" for i in range(spec.num_labels)]


def class_records(scores: Tensor, names: list[str], regression: bool = False) -> list[dict]:
    """One prediction record per row of `scores` (n x c: a classifier's logits, or a generative task's choice
    log-likelihoods, whose softmax is p(choice | prompt)): {'value'} for regression, else {'label', 'label_id',
    'probabilities': {name: softmax p}}."""
    if regression:
        return [{"value": float(v)} for v in scores[:, 0]]
    probs = torch.softmax(scores.double(), dim=-1)
    ids = probs.argmax(dim=-1).tolist()
    return [{"label": names[k], "label_id": k, "probabilities": dict(zip(names, map(float, p)))} for k, p in zip(ids, probs)]


def label_config(config, spec) -> None:
    """Name the labels of `config` (a transformers PretrainedConfig) from the task spec: id2label/label2id and
    problem_type, so `pipeline("text-classification")` prints names and applies softmax (classes) or nothing
    (regression)."""
    names = label_names(spec)
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    config.num_labels = spec.num_labels
    config.problem_type = "regression" if spec.is_regression else "single_label_classification"


def fold(model: nn.Module, deltas: dict[str, Tensor], head: dict[str, Tensor], spec) -> nn.Module:
    """`model` (a freshly loaded classifier of spec.num_labels) with W_m = W0_m + Δ_m (d_out x d_in) for
    every updated module, the task head copied in and the labels named: a standalone model."""
    add_deltas(model, deltas)
    load_head(model, head)
    label_config(model.config, spec)
    return model


def serving_factors(source: Tensor | tuple[Tensor, Tensor], max_rank: int) -> tuple[tuple[Tensor, Tensor], float]:
    """LoRA factors (A: k x d_in, B: d_out x k, float32, scale folded in: Δ ≈ B A) of an update and the
    relative Frobenius error ||Δ - B A||_F / ||Δ||_F.

    source: a dense Δ (d_out x d_in), SVD-truncated to k = min(max_rank, d_out, d_in) (Eckart-Young), or
    factors (A, B) with Δ = B A, kept exactly (error 0) when their rank is <= max_rank and truncated from
    the factors otherwise (never densified). A zero-rank update becomes one zero component (PEFT needs r >= 1).
    """
    if isinstance(source, tuple):
        a, b = source[0].float(), source[1].float()
        if a.shape[0] == 0:
            return (a.new_zeros(1, a.shape[1]), b.new_zeros(b.shape[0], 1)), 0.0
        if a.shape[0] <= max_rank:
            return (a.contiguous(), b.contiguous()), 0.0
        return truncate(MergeResult(factors=(a, b)), max_rank)
    k = max(1, min(max_rank, *source.shape))
    return truncate(MergeResult(delta=source.float(), factors=None), k)


def uniform_rank(factors: dict[str, tuple[Tensor, Tensor]]) -> dict[str, tuple[Tensor, Tensor]]:
    """The factors zero-padded to the largest rank among them (B A unchanged): one `r` for every module, as
    LoRA serving stacks that read no rank_pattern need."""
    r = max(a.shape[0] for a, _ in factors.values())
    return {m: (torch.cat([a, a.new_zeros(r - a.shape[0], a.shape[1])]), torch.cat([b, b.new_zeros(b.shape[0], r - b.shape[1])], dim=1))
            for m, (a, b) in factors.items()}


def truncation_summary(errors: dict[str, float], max_rank: int) -> dict:
    """{'max_rank', 'max_error', 'mean_error', 'per_module'} of one exported adapter (errors relative, Frobenius)."""
    vals = list(errors.values()) or [0.0]
    return {"max_rank": max_rank, "max_error": max(vals), "mean_error": sum(vals) / len(vals), "per_module": dict(sorted(errors.items()))}
