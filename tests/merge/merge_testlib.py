"""Helpers for the merge tests: random LoRA updates (small shapes: tests stay fast on 2 cores), tolerances."""

from __future__ import annotations

import torch

from osrm_core.merge.types import ModuleUpdates


def random_updates(
    T: int = 3,
    d_out: int = 9,
    d_in: int = 7,
    ranks: int | list[int] = 2,
    seed: int = 0,
    scales: list[float] | None = None,
    grams: bool = False,
    fishers: bool = False,
    base: bool = False,
) -> ModuleUpdates:
    """T random LoRA pairs (A_t: r_t × d_in, B_t: d_out × r_t), optional Grams/Fishers/base."""
    g = torch.Generator().manual_seed(seed)
    ranks = [ranks] * T if isinstance(ranks, int) else ranks
    scales = scales if scales is not None else [0.5 + 0.5 * t for t in range(T)]
    kw = {}
    if grams:
        xs = [torch.randn(3 * d_in, d_in, generator=g) * (1 + t) for t in range(T)]
        kw["grams"] = [x.T @ x for x in xs]
        kw["counts"] = [x.shape[0] for x in xs]  # tokens behind each Gram
    if fishers:
        kw["fishers"] = [torch.rand(d_out, d_in, generator=g) ** 3 * 10 ** (-t) for t in range(T)]
    if base:
        kw["base"] = torch.randn(d_out, d_in, generator=g)
    return ModuleUpdates(
        A=[torch.randn(r, d_in, generator=g) for r in ranks],
        B=[torch.randn(d_out, r, generator=g) for r in ranks],
        scale=scales,
        name="layer.0.query",
        **kw,
    )


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Shape-checked allclose with float64 comparison."""
    assert tuple(actual.shape) == tuple(expected.shape)
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- naive TIES pieces (explicit loops)


def naive_trim(tau, density):
    """Keep the int(density·numel) largest |entries| (python sort)."""
    if density >= 1:
        return tau.clone()
    flat = tau.flatten().tolist()
    k = int(density * len(flat))
    keep = set(sorted(range(len(flat)), key=lambda i: -abs(flat[i]))[:k])
    return torch.tensor([v if i in keep else 0.0 for i, v in enumerate(flat)]).view_as(tau)


def sign(x):
    return (x > 0) - (x < 0)


def naive_ties(taus, weights, election, variant, lam):
    """Entry-by-entry TIES on already sparsified tensors."""
    out = torch.zeros_like(taus[0])
    T = len(taus)
    for idx in torch.cartesian_prod(*[torch.arange(n) for n in taus[0].shape]).tolist():
        vals = [float(taus[t][tuple(idx)]) for t in range(T)]
        src = [weights[t] * vals[t] for t in range(T)] if variant == "mergekit" else vals
        vote = sum(src) if election == "total" else sum(sign(v) for v in src)
        sigma = 1 if vote >= 0 else -1
        agree = [t for t in range(T) if sign(src[t]) == sigma]
        num = sum(weights[t] * vals[t] for t in agree)
        den = max(1, len(agree)) if variant == "peft" else (sum(weights[t] for t in agree) or 1.0)
        out[tuple(idx)] = lam * num / den
    return out
