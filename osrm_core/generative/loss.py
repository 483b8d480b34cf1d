"""The training loss of a generative task: the causal LM's mean cross-entropy over the target tokens, with the LM
head and the softmax run only where a target token is predicted.

The prompt is masked (-100), so the logits of prompt positions are never used; computing them costs a V-wide
matmul and softmax per token (V = 49152 on SmolLM2-135M, a quarter of a step). `logits_to_keep` with a tensor
of positions keeps the span of columns that predict some row's target (length-grouped batches keep it short).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from osrm_core.generative.batches import IGNORE


def completion_loss(model: nn.Module, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the target tokens (inputs and labels B x L, -100 off target), the value of
    `model(**inputs, labels=labels).loss`, from the logits of the K columns that predict a target (B x K x V)."""
    predicts = labels[:, 1:] != IGNORE  # column l predicts token l + 1
    cols = predicts.any(0).nonzero()[:, 0]
    keep = torch.arange(int(cols[0]), int(cols[-1]) + 1, device=labels.device)
    logits = model(**inputs, logits_to_keep=keep).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), labels[:, keep + 1].flatten(), ignore_index=IGNORE)
