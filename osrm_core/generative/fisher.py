"""Diagonal-Fisher objectives of generative tasks (osrm_core.merge.fisher.diag_fisher's `objective`).

Each returns (scalar objectives, one backward each, number of examples); an example's per-example gradient
is what the Fisher squares (docs/merging.md, "Fisher of a generative task"):

- with choices, the model's predictive distribution over the choices, p(c | x) ∝ exp(log-likelihood of c):
  the classification Fisher over label words (exact expectation, or one sampled / the argmax choice);
- free text, the model's next-token distribution at each target position (teacher-forced on the reference):
  Σ_l log p(y_l | x, y_<l) with y_l drawn from the model ('sample'; also for 'expected', whose exact sum over
  the vocabulary would take one backward per token) or its argmax.
"""

from __future__ import annotations

import torch

from osrm_core.generative.batches import IGNORE, ChoiceBatch
from osrm_core.generative.score import choice_scores


def choice_objective(model, batch: ChoiceBatch, labels: str, generator: torch.Generator | None):
    """(objectives, rows): the classification objectives over each row's choice log-likelihoods (rows x choices)."""
    from osrm_core.merge.fisher import class_objectives

    device = next(model.parameters()).device
    return class_objectives(choice_scores(model, batch, str(device)), False, labels, generator), batch.rows


def token_objective(model, batch: tuple[dict, torch.Tensor], labels: str, generator: torch.Generator | None):
    """([Σ over target positions of log p(ŷ_l)], B) for a training batch (inputs, labels B x L; -100 = not target)."""
    inputs, gold = batch
    logits = model(**inputs).logits[:, :-1].float()  # position l predicts token l + 1
    on_target = gold[:, 1:] != IGNORE
    logp = torch.log_softmax(logits[on_target], dim=-1)  # T x V, the target positions only
    probs = logp.detach().exp()
    y = probs.argmax(-1) if labels == "argmax" else torch.multinomial(probs, 1, generator=generator)[:, 0]
    return [logp.gather(1, y[:, None]).sum()], gold.shape[0]
