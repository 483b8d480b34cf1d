"""One score per row of a generative task: the choices' log-likelihoods, or the generated text's score.

label_likelihood: log p(choice tokens | prompt) summed over the choice's tokens, for every choice (the T0 /
lm-eval multiple-choice convention); one forward over all (row, choice) sequences of a batch keeps only the
logits of the choices' positions. generate: greedy decoding with the KV cache (model.generate), the new tokens
decoded and scored against the reference (exact match or token F1).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from osrm_core.generative.batches import ChoiceBatch, PromptBatch
from osrm_core.train import autocast


def _on(inputs: dict, device: str) -> dict:
    return {k: v.to(device) for k, v in inputs.items()}


def choice_scores(model: nn.Module, batch: ChoiceBatch, device: str = "cpu") -> torch.Tensor:
    """Log-likelihood of each choice given its row's prompt (rows x choices, float32), differentiable."""
    logits = model(**_on(batch.inputs, device), logits_to_keep=batch.keep).logits  # N x K x V
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # position k predicts token k + 1
    picked = logp.gather(-1, batch.targets.to(device)[..., None])[..., 0]  # N x K-1
    return (picked * batch.mask.to(device)).sum(-1).view(batch.rows, batch.choices)


@torch.no_grad()
def label_likelihood(model: nn.Module, batches: Iterable[ChoiceBatch], device: str = "cpu", bf16: bool = False) -> torch.Tensor:
    """Choice log-likelihoods (n x choices) float32 on the CPU, rows in batch order."""
    model.eval()
    out = []
    for batch in batches:
        with autocast(device, bf16):
            out.append(choice_scores(model, batch, device).cpu())
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def continuations(model: nn.Module, batch: PromptBatch, device: str = "cpu", bf16: bool = False) -> list[str]:
    """The greedy continuation of each left-padded prompt of `batch` (B texts), cut at EOS and decoded."""
    d = batch.decoding
    with autocast(device, bf16):
        ids = model.generate(**_on(batch.inputs, device), max_new_tokens=d.max_new_tokens, do_sample=False,
                             num_beams=1, use_cache=True, pad_token_id=d.pad_id, eos_token_id=d.eos_id)
    new = ids[:, batch.inputs["input_ids"].shape[1]:].cpu()  # left padding: every prompt ends at the same column
    return [d.decode(row.tolist()) for row in new]


@torch.no_grad()
def generate(model: nn.Module, batches: Iterable[PromptBatch], device: str = "cpu", bf16: bool = False) -> torch.Tensor:
    """Per-row scores (n x 1) float32 of the greedy continuations against the references, rows in batch order."""
    model.eval()
    out = []
    for batch in batches:
        texts = continuations(model, batch, device, bf16)
        out.append(torch.tensor([[batch.decoding.score(t, ref)] for t, ref in zip(texts, batch.targets)], dtype=torch.float32))
    return torch.cat(out) if out else torch.empty(0)
