"""Serving a generative task: a prompt's decoding must fit data.max_length, greedy generation settings for an
exported model, and `osrm predict`'s records (docs/serving.md, "Generative tasks")."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from osrm_core.batching import in_input_order
from osrm_core.errors import OsrmError
from osrm_core.export import class_records
from osrm_core.generative.batches import Decoding, PromptBatch
from osrm_core.generative.score import continuations


def check_lengths(prompts: list[list[int]], new_tokens: int, max_length: int, where: str) -> None:
    """One-line OsrmError for the first prompt (token ids) that, with `new_tokens` more, passes `max_length`:
    the adapters were trained and checked within it (nothing is truncated silently)."""
    for i, p in enumerate(prompts, 1):
        if len(p) + new_tokens > max_length:
            raise OsrmError(f"{where}: row {i}: the prompt is {len(p)} tokens, with up to {new_tokens} to decode more than "
                            f"data.max_length={max_length} — shorten the row's text or raise data.max_length")


def greedy(config, decoding: Decoding) -> None:
    """Make a transformers GenerationConfig decode as the project does: greedy, one beam, at most
    decoding.max_new_tokens, stopping at EOS, padding with the tokenizer's pad id (sampling knobs cleared, which
    greedy ignores and save_pretrained would flag)."""
    config.update(do_sample=False, num_beams=1, max_new_tokens=decoding.max_new_tokens,
                  eos_token_id=decoding.eos_id, pad_token_id=decoding.pad_id, temperature=None, top_p=None, top_k=None)


def choice_records(scores: torch.Tensor, order: list[int], choices: list[str]) -> list[dict]:
    """Records in input order from choice log-likelihoods (n x choices, rows in `order`): the likeliest choice,
    its index and p(choice | prompt) = softmax over the choices' log-likelihoods."""
    return class_records(in_input_order(scores, order), choices)


def generated_records(model: nn.Module, batches: Iterable[PromptBatch], order: list[int]) -> list[dict]:
    """[{'generated': greedy continuation, stripped}] in input order, from prompt batches in `order`."""
    texts = [t.strip() for batch in batches for t in continuations(model.eval(), batch)]
    return [{"generated": t} for t in in_input_order(texts, order)]
