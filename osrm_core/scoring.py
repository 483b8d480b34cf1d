"""Reuse one loaded classifier per label count while scoring many (task, body update, head) triples.

`osrm evaluate` scores 8 tasks x up to 27 models and `osrm select` hundreds of grid points; loading the
backbone for each costs ~0.7 s on MiniLM and far more on larger models. The pool keeps one model per
`num_labels`, a snapshot W0 of every module it has changed, and sets W = W0 + delta (exactly the value
`add_deltas` gives on a fresh model: the same float32 addition) before loading the task's head.
"""

from __future__ import annotations

from typing import Callable, Hashable

import torch
from torch import nn

from osrm_core.apply import check_deltas, load_head


class ClassifierPool:
    """`get(num_labels, deltas, head)` -> the backbone classifier with W = W0 + delta and the task head.

    deltas: module name -> d_out x d_in update (missing modules are reset to W0);
    head: parameter name -> tensor (every head parameter of the task, as saved with its adapter).
    The returned model is shared: it is valid until the next `get` with the same `num_labels`."""

    def __init__(self, load: Callable[[int], nn.Module]):
        self._load = load
        self._models: dict[int, tuple[nn.Module, dict[str, nn.Module], dict[str, torch.Tensor]]] = {}

    def __len__(self) -> int:
        return len(self._models)

    @torch.no_grad()
    def get(self, num_labels: Hashable, deltas: dict[str, torch.Tensor], head: dict[str, torch.Tensor],
            load: Callable[[], nn.Module] | None = None) -> nn.Module:
        """`num_labels` keys the model (any task kind's osrm_core.tasks.kinds model_key); `load` builds it when
        the key is new (default: the pool's loader called with the key)."""
        if num_labels not in self._models:
            model = load() if load is not None else self._load(num_labels)
            self._models[num_labels] = (model, dict(model.named_modules()), {})
        model, named, w0 = self._models[num_labels]
        check_deltas(named, deltas)
        for name in deltas:
            if name not in w0:
                w0[name] = named[name].weight.detach().clone()
        for name, base in w0.items():
            weight = named[name].weight
            if name in deltas:
                torch.add(base, deltas[name].to(weight.dtype), out=weight)
            else:
                weight.copy_(base)
        load_head(model, head)
        return model
