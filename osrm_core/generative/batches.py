"""Batches of a generative task: right-padded for training and features, left-padded for scoring.

Training and feature batches hold prompt + target + EOS (B x L, padded on the right, pads masked); the labels
(B x L) are -100 on the prompt and on padding, so the loss is on the target tokens only. Scoring batches are
padded on the left so that every prompt ends at the last position: the choices continue every prompt from its KV
cache and generation continues every prompt from the same place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Callable, NamedTuple

import torch

IGNORE = -100  # label of a position the loss skips (transformers' convention)


def pad(seqs: Sequence[Sequence[int]], pad_id: int, left: bool = False, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids B x L int64, attention mask B x L int64) of `seqs` padded to the longest (or to `length`)."""
    width = max(length or 0, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, span], mask[i, span] = torch.as_tensor(list(s), dtype=torch.long), 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids (B x L) of a left-padded batch: each sequence counts from 0 at its first real token."""
    return (mask.cumsum(-1) - 1).clamp_min(0)


def train_batches(examples: list[tuple[list[int], int]], batch_size: int, order: Sequence[int],
                  pad_id: int) -> Iterator[tuple[dict, torch.Tensor]]:
    """(inputs {input_ids, attention_mask} B x L, labels B x L) in `order`; labels are the target + EOS tokens."""
    for i in range(0, len(order), batch_size):
        chosen = [examples[j] for j in order[i:i + batch_size]]
        ids, mask = pad([seq for seq, _ in chosen], pad_id)
        labels = ids.masked_fill(mask == 0, IGNORE)
        for row, (_, n_prompt) in enumerate(chosen):
            labels[row, :n_prompt] = IGNORE
        yield {"input_ids": ids, "attention_mask": mask}, labels


def feature_batches(examples: list[tuple[list[int], int]], batch_size: int, pad_id: int,
                    length: int | None = None) -> Iterator[tuple[dict, None]]:
    """({input_ids, attention_mask} B x L, None) over prompt + target + EOS in dataset order (the capture masks pads)."""
    for i in range(0, len(examples), batch_size):
        ids, mask = pad([seq for seq, _ in examples[i:i + batch_size]], pad_id, length=length)
        yield {"input_ids": ids, "attention_mask": mask}, None


class ChoiceBatch(NamedTuple):
    """A block of rows scored against every choice: the prompts run once and each choice continues each prompt
    from its KV cache (osrm_core.generative.score.choice_scores), so a prompt costs one forward, not one per choice.

    prompt: input_ids, attention_mask, position_ids (B x P), left-padded so that every prompt ends at the last
    column; choices (C x L): the choices' token ids, right-padded with 0; choice_mask (C x L): 1 on real tokens."""

    prompt: dict
    choices: torch.Tensor
    choice_mask: torch.Tensor

    @property
    def rows(self) -> int:
        return self.prompt["input_ids"].shape[0]

    @property
    def n_choices(self) -> int:
        return self.choices.shape[0]


def choice_batches(prompts: list[list[int]], choices: list[list[int]], batch_size: int, order: Sequence[int],
                   pad_id: int) -> Iterator[ChoiceBatch]:
    """One ChoiceBatch per `batch_size` rows of `order`; scores come back rows x choices in that order."""
    tokens, real = pad(choices, 0)
    for i in range(0, len(order), batch_size):
        ids, mask = pad([prompts[j] for j in order[i:i + batch_size]], pad_id, left=True)
        yield ChoiceBatch({"input_ids": ids, "attention_mask": mask, "position_ids": positions(mask)}, tokens, real)


class Decoding(NamedTuple):
    """How prompts are continued and scored: greedy for max_new_tokens (or until EOS), the new tokens decoded
    by `decode` (ids list -> text) and compared with the reference by `score` (prediction, reference) -> [0, 1]."""

    max_new_tokens: int
    pad_id: int
    eos_id: int
    decode: Callable[[list[int]], str]
    score: Callable[[str, str], float]


class PromptBatch(NamedTuple):
    """Left-padded prompts (inputs: input_ids, attention_mask B x L), each row's reference target text, and
    how to decode and score them."""

    inputs: dict
    targets: list[str]
    decoding: Decoding


def prompt_batches(prompts: list[list[int]], targets: list[str], batch_size: int, order: Sequence[int],
                   decoding: Decoding) -> Iterator[PromptBatch]:
    for i in range(0, len(order), batch_size):
        chosen = order[i:i + batch_size]
        ids, mask = pad([prompts[j] for j in chosen], decoding.pad_id, left=True)
        yield PromptBatch({"input_ids": ids, "attention_mask": mask}, [targets[j] for j in chosen], decoding)
