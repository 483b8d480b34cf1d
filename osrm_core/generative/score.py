"""One score per row of a generative task: the choices' log-likelihoods, or the generated text's score.

label_likelihood: log p(choice tokens | prompt) summed over the choice's tokens, for every choice (the T0 /
lm-eval multiple-choice convention); each prompt runs once and every choice continues it from the KV cache.
generate: greedy decoding with the KV cache (model.generate), the new tokens decoded and scored against the
reference (exact match or token F1).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import torch
from torch import nn

from osrm_core.generative.batches import ChoiceBatch, PromptBatch
from osrm_core.train import autocast


def _on(inputs: dict, device: str) -> dict:
    return {k: v.to(device) for k, v in inputs.items()}


def _cache_argument(model: nn.Module) -> str:
    """The forward's KV-cache argument: `cache` in transformers 5 (`past_key_values` deprecated there), else
    `past_key_values` (pyproject allows both)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel passes kwargs on
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def choice_scores(model: nn.Module, batch: ChoiceBatch, device: str = "cpu") -> torch.Tensor:
    """Log-likelihood of each choice given its row's prompt (rows x choices, float32), differentiable.

    log p(c | x) = Σ_l log p(c_l | x, c_<l): the prompts' forward (B x P, KV cache kept) gives every choice's first
    token; the cache, repeated per choice, continues with c_<L (B·C x L−1) for the rest. The same sums as one forward
    over every (prompt + choice) sequence, with each prompt computed once instead of C times."""
    rows, n, width = batch.rows, batch.n_choices, batch.choices.shape[1]
    prompt = _on(batch.prompt, device)
    choices, real = batch.choices.to(device), batch.choice_mask.to(device)
    out = model(**prompt, use_cache=width > 1, logits_to_keep=1)
    scores = torch.log_softmax(out.logits[:, -1].float(), dim=-1)[:, choices[:, 0]]  # B x C: each choice's first token
    if width == 1:
        return scores
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    cache.batch_repeat_interleave(n)  # row-major: row r's choice c is sequence r * C + c
    mask = torch.cat([prompt["attention_mask"].repeat_interleave(n, 0), real[:, :-1].repeat(rows, 1)], dim=1)
    start = prompt["position_ids"][:, -1:].repeat_interleave(n, 0) + 1
    steps = start + torch.arange(width - 1, device=device)
    logits = model(input_ids=choices[:, :-1].repeat(rows, 1), attention_mask=mask, position_ids=steps, use_cache=False,
                   **{_cache_argument(model): cache}).logits  # B·C x L−1 x V
    logp = torch.log_softmax(logits.float(), dim=-1)  # position l predicts choice token l + 1
    picked = logp.gather(-1, choices[:, 1:].repeat(rows, 1)[..., None])[..., 0] * real[:, 1:].repeat(rows, 1)
    return scores + picked.sum(-1).view(rows, n)


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
