"""Put a merged or individual update into a plain (non-PEFT) classifier: W <- W0 + delta, head <- task head."""

from __future__ import annotations

import torch
from torch import nn

from osrm_core.errors import OsrmError


def check_deltas(named: dict[str, nn.Module], deltas: dict[str, torch.Tensor]) -> None:
    """Every update names an existing module of the same weight shape, or a one-line OsrmError."""
    for name, d in deltas.items():
        if name not in named:
            raise OsrmError(f"update for module '{name}' does not exist in this backbone — merged for another model?")
        w = named[name].weight
        if tuple(w.shape) != tuple(d.shape):
            raise OsrmError(f"update for '{name}' is {tuple(d.shape)}, weight is {tuple(w.shape)} — merged for another model?")


@torch.no_grad()
def add_deltas(model: nn.Module, deltas: dict[str, torch.Tensor]) -> None:
    """W_m += delta_m (d_out x d_in) for each named linear module m."""
    named = dict(model.named_modules())
    check_deltas(named, deltas)
    for name, d in deltas.items():
        w = named[name].weight
        w.add_(d.to(w.dtype))


@torch.no_grad()
def load_head(model: nn.Module, head: dict[str, torch.Tensor]) -> None:
    """Copy a task head (e.g. classifier.weight/bias) into the model; all head tensors must fit."""
    params = dict(model.named_parameters())
    for name, t in head.items():
        if name not in params or tuple(params[name].shape) != tuple(t.shape):
            raise OsrmError(f"head tensor '{name}' {tuple(t.shape)} does not fit this model — wrong task or num_labels")
        params[name].copy_(t.to(params[name].dtype))
