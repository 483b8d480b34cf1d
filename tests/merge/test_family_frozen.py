"""The TIES/DARE family (generalized.py and its four presets) is BIT-identical to the code it replaced.

FROZEN below is a verbatim copy of the pre-refactor ``sparsify.py`` pieces and of the four
``merge`` functions (ties, dare_ties, dare_linear, magnitude_prune); every preset is compared with
``torch.equal`` (and sign bits of zeros) for the default parameters, the pipeline's and sweep's
settings, and a few others, on random factors, with seeded DARE generators.
"""

from __future__ import annotations

import pytest
import torch
from merge_testlib import random_updates

from osrm_core.merge import METHODS
from osrm_core.merge.generalized import Family, merge

# ---------------------------------------------------------------- FROZEN (do not edit)


def kth_largest(a, k, sample=65536):
    n = a.numel()
    if n <= 4 * sample:
        return torch.kthvalue(a, n - k + 1).values
    idx = torch.randint(n, (sample,), generator=torch.Generator().manual_seed(n + k))
    probe = a[idx].sort().values
    q, margin = 1 - k / n, 4 * (sample * (k / n) * (1 - k / n)) ** 0.5 + 16
    lo = probe[max(0, int(q * sample - margin))]
    hi = probe[min(sample - 1, int(q * sample + margin))]
    above = int(torch.count_nonzero(a > hi))
    band = a[(a >= lo) & (a <= hi)]
    if above < k <= above + band.numel():
        return torch.kthvalue(band, band.numel() - (k - above) + 1).values
    return torch.kthvalue(a, n - k + 1).values


def magnitude_trim_(tau, density):
    if density >= 1:
        return tau
    flat = tau.view(-1)
    k = int(density * flat.numel())
    if k <= 0:
        return tau.zero_()
    mag = flat.abs()
    thr = kth_largest(mag, k)
    keep = mag >= thr
    extra = int(torch.count_nonzero(keep)) - k
    if extra > 0:
        keep[(mag == thr).nonzero()[-extra:, 0]] = False
    return flat.mul_(keep).view_as(tau)


def random_drop_(tau, density, generator, rescale=True):
    if density >= 1:
        return tau
    mask = torch.bernoulli(torch.full_like(tau, density), generator=generator)
    tau.mul_(mask)
    if rescale and density > 0:
        tau.div_(density)
    return tau


def elect_sign(stack, election):
    votes = stack.sum(dim=0) if election == "total" else stack.sign().sum(dim=0)
    return torch.where(votes >= 0, 1.0, -1.0).to(stack.dtype)


def ties_combine(stack, weights, election, variant):
    w = torch.tensor(list(weights), dtype=stack.dtype, device=stack.device).view(-1, *([1] * (stack.dim() - 1)))
    if variant == "mergekit":
        stack.mul_(w)
        agree = stack.sign() == elect_sign(stack, election)
        divisor = (w * agree).sum(dim=0)
        divisor = torch.where(divisor == 0, torch.ones_like(divisor), divisor)
        return stack.mul_(agree).sum(dim=0) / divisor
    agree = stack.sign() == elect_sign(stack, election)
    count = agree.sum(dim=0).clamp_min(1).to(stack.dtype)
    return stack.mul_(w).mul_(agree).sum(dim=0) / count


def gen_or_default(generator, info):
    if generator is not None:
        return generator
    info["seed"] = 0
    return torch.Generator().manual_seed(0)


def frozen_ties(updates, p, generator=None):
    w = updates.task_weights(p.weights)
    stack = updates.stacked_deltas()
    for t in range(updates.num_tasks):
        magnitude_trim_(stack[t], p.density)
    kept = int(torch.count_nonzero(stack)) / stack.numel()
    delta = ties_combine(stack, w, p.election, p.variant).mul_(p.lambda_)
    nonzero = int(torch.count_nonzero(delta)) / delta.numel()
    return delta, {"kept_fraction": kept, "nonzero_fraction": nonzero}


def frozen_dare_ties(updates, p, generator=None):
    info = {}
    gen = gen_or_default(generator, info)
    w = updates.task_weights(p.weights)
    stack = updates.stacked_deltas()
    for t in range(updates.num_tasks):
        random_drop_(stack[t], p.density, gen, rescale=True)
    return ties_combine(stack, w, p.election, p.variant).mul_(p.lambda_), info


def frozen_dare_linear(updates, p, generator=None):
    info = {}
    gen = gen_or_default(generator, info)
    w = updates.task_weights(p.weights)
    delta = torch.zeros(updates.shape, dtype=torch.float32, device=updates.A[0].device)
    for t in range(updates.num_tasks):
        delta.add_(random_drop_(updates.delta(t), p.density, gen, p.rescale), alpha=p.lambda_ * w[t])
    return delta, info


def frozen_magnitude_prune(updates, p, generator=None):
    w = updates.task_weights(p.weights)
    delta = torch.zeros(updates.shape, dtype=torch.float32, device=updates.A[0].device)
    for t in range(updates.num_tasks):
        delta.add_(magnitude_trim_(updates.delta(t), p.density), alpha=p.lambda_ * w[t])
    return delta, {"nonzero_fraction": int(torch.count_nonzero(delta)) / delta.numel()}


FROZEN = {"ties": frozen_ties, "dare_ties": frozen_dare_ties, "dare_linear": frozen_dare_linear,
          "magnitude_prune": frozen_magnitude_prune}

# ---------------------------------------------------------------- comparisons

W4 = [1.0, 0.5, 2.0, -0.25]
CASES = [
    ("ties", {}), ("ties", {"lambda": 1.0, "density": 0.2}),  # pipeline.yaml
    *[("ties", {"density": d, "lambda": 1.0}) for d in (0.1, 0.5, 0.8)],  # the sweep's grid
    ("ties", {"density": 0.37, "election": "frequency", "weights": W4, "lambda": 0.7}),
    ("ties", {"density": 0.3, "variant": "mergekit", "weights": W4}),
    ("ties", {"density": 0.45, "variant": "mergekit", "election": "frequency", "weights": W4}),
    ("ties", {"density": 1.0}),
    ("dare_ties", {}), ("dare_ties", {"density": 0.3, "election": "frequency", "weights": W4, "lambda": 0.6}),
    ("dare_ties", {"density": 0.7, "variant": "mergekit", "weights": W4}),
    ("dare_linear", {}), ("dare_linear", {"density": 0.2, "weights": W4, "lambda": 1.1}),
    ("dare_linear", {"density": 0.6, "rescale": False}),
    ("magnitude_prune", {}), ("magnitude_prune", {"density": 0.55, "weights": W4, "lambda": 1.0}),
]


def bits_equal(a, b):
    """torch.equal plus equal sign bits (−0.0 vs +0.0 would change the written safetensors bytes)."""
    return torch.equal(a, b) and torch.equal(a.view(torch.int32), b.view(torch.int32))


@pytest.mark.parametrize("shape", [(9, 7), (64, 48), (520, 520)])  # the last goes through the sampled kth bracket
@pytest.mark.parametrize("key,raw", CASES)
def test_presets_are_bit_identical_to_the_frozen_code(key, raw, shape):
    u = random_updates(T=4, d_out=shape[0], d_in=shape[1], ranks=[2, 3, 1, 4], seed=sum(shape) + len(raw))
    u.B[2].zero_()  # an untrained adapter: exact zeros in the trim
    m = METHODS[key]
    p = m.params.model_validate(raw)
    for seed in (3, None):  # a seeded generator, and the default seed
        gen = lambda: torch.Generator().manual_seed(seed) if seed is not None else None  # noqa: E731
        res = m.fn(u, p, gen())
        want, info = FROZEN[key](u, p, gen())
        assert bits_equal(res.delta, want), (key, raw, seed)
        assert res.info == info


def test_a_generator_continues_across_modules_as_before():
    """The stage passes ONE generator through all modules: its state after a merge must match too."""
    u, v = random_updates(T=3, seed=1), random_updates(T=3, d_out=5, d_in=11, seed=2)
    for key in ("dare_ties", "dare_linear"):
        m = METHODS[key]
        p = m.params()
        g_new, g_old = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
        for upd in (u, v):
            assert bits_equal(m.fn(upd, p, g_new).delta, FROZEN[key](upd, p, g_old)[0])
        assert torch.equal(g_new.get_state(), g_old.get_state())


def test_family_config_covers_task_arithmetic_and_is_strict():
    u = random_updates(T=3, seed=4)
    dense = merge(u, Family(sparsify="none", consensus="none", lambda_=0.3)).delta
    assert torch.allclose(dense, METHODS["task_arithmetic"].fn(u, METHODS["task_arithmetic"].params(), None).delta, atol=1e-6)
    with pytest.raises(ValueError):
        Family(sparsify="topk", consensus="none")
