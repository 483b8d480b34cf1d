"""Hidden-feature capture: the inputs of every target nn.Linear, accumulated per layer.

For each target module and each batch, with x the module input (B x L x d_in) and m the
non-padding mask (B x L):
  * sample-mean rows  r_b = sum_l m_bl x_bl / sum_l m_bl            -> (B x d_in)   (paper's estimator)
  * token Gram        G  += sum_{b,l: m_bl=1} x_bl x_bl^T  (float64) -> (d_in x d_in) (token estimator, RegMean)
  * token count       n  += sum m
With ``include_padding`` the mean runs over every position (the released code's behaviour).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn


def target_module_names(model: nn.Module, suffixes: list[str]) -> list[str]:
    """Names of nn.Linear modules whose dotted name ends with one of `suffixes`, in model order."""
    names = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and any(name == s or name.endswith("." + s) for s in suffixes):
            names.append(name)
    return names


@dataclass
class LayerStats:
    """Running statistics of one layer's inputs."""

    rows: list[torch.Tensor] = field(default_factory=list)  # each B x d_in, float32
    gram: torch.Tensor | None = None  # d_in x d_in, float64
    count: int = 0

    def sample_means(self) -> torch.Tensor:
        """(k x d_in) float32."""
        return torch.cat(self.rows) if self.rows else torch.empty(0)


def batch_stats(x: torch.Tensor, mask: torch.Tensor | None, include_padding: bool, gram_dtype: torch.dtype = torch.float64):
    """Per-batch (rows B x d_in float32, gram d_in x d_in float64, count) for a module input x (B x L x d_in).
    gram_dtype: the dtype the batch's Gram is multiplied in before it is widened to float64 (the running sum
    over batches is float64 either way; benchmarks/bench_extract.py measures float32 here)."""
    x = x.detach()
    if x.dim() == 2:  # a module applied to pooled vectors: each row is one sample
        x = x.unsqueeze(1)
    if mask is None or mask.shape != x.shape[:2]:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    m = mask.to(torch.bool)
    xf = x.float()
    if include_padding:
        rows = xf.mean(dim=1)
    else:
        w = m.unsqueeze(-1).float()
        rows = (xf * w).sum(1) / w.sum(1).clamp_min(1.0)
    tokens = xf[m].to(gram_dtype)  # N x d_in, only real tokens
    return rows.cpu(), (tokens.T @ tokens).double().cpu(), int(m.sum())


class FeatureCapture:
    """Forward pre-hooks on target modules. Call `new_batch(attention_mask)` before each forward.

    Modules that receive the very same input tensor (q, k, v of one block; T5's cross-attention k/v,
    which all read the encoder output) share one computation. The mask (B x L) applies to any input
    whose first two dimensions are (B, L): encoder tokens, and a T5 decoder fed the right-shifted
    input_ids (its position i holds token i-1, so its real positions are those of the mask).
    Inputs of any other shape count every position.
    """

    def __init__(self, model: nn.Module, names: list[str], include_padding: bool = False):
        self.names, self.include_padding = names, include_padding
        self.stats = {n: LayerStats() for n in names}
        self.mask: torch.Tensor | None = None
        self._memo: dict[tuple, tuple] = {}
        self._first: dict[tuple, str] = {}
        self.alias: dict[str, str] = {}  # module -> first module that received the same input tensor
        modules = dict(model.named_modules())
        self._handles = [modules[n].register_forward_pre_hook(self._hook(n)) for n in names]

    def _hook(self, name: str):
        def fn(_module, args):
            x = args[0]
            key = (x.data_ptr(), tuple(x.shape))
            if key not in self._memo:  # x is kept alive until new_batch, so its address is not reused
                self._memo[key] = (x, *batch_stats(x, self.mask, self.include_padding))
            self.alias.setdefault(name, self._first.setdefault(key, name))
            if self.alias[name] != name:
                return  # same input as a module already recorded (q/k/v of one block): store once
            _, rows, gram, count = self._memo[key]
            st = self.stats[name]
            st.rows.append(rows)
            st.gram = gram.clone() if st.gram is None else st.gram.add_(gram)
            st.count += count

        return fn

    def new_batch(self, mask: torch.Tensor | None) -> None:
        self.mask, self._memo, self._first = mask, {}, {}

    def canonical_stats(self) -> dict[str, LayerStats]:
        """Statistics of modules that own their input (aliases point at these)."""
        return {n: s for n, s in self.stats.items() if self.alias.get(n, n) == n}

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


@contextmanager
def capture(model: nn.Module, names: list[str], include_padding: bool = False):
    """Context manager around :class:`FeatureCapture` that always removes its hooks."""
    cap = FeatureCapture(model, names, include_padding)
    try:
        yield cap
    finally:
        cap.close()
