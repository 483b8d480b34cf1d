"""Fisher merging: diagonal-Fisher-weighted average of the task weights, and the Fisher itself.

Paper: Matena & Raffel, "Merging Models with Fisher-Weighted Averaging", NeurIPS 2022,
arXiv:2111.09832.
Variant: diagonal Fisher of each target module's (effective) weight; merged weight
``W = Σ_t w_t F_t W_t / Σ_t w_t F_t`` with ``W_t = W0 + τ_t``.  W0 cancels element-wise, so the
update is ``Δ = Σ_t w_t F'_t τ_t / Σ_t w_t F'_t`` with ``F'_t = F_t + ε·mean(F)``: the relative floor
ε makes entries that no task's Fisher covers fall back to the (weighted) plain average, and makes
the result invariant to a common rescaling of the Fishers.  ``normalize`` divides each F_t by its
mean first (per module), so a task's loss scale (e.g. regression vs classification) does not decide
its weight.

``diag_fisher`` computes ``F = (1/N) Σ_n E_{y~p(y|x_n)} [(∂ log p(y|x_n)/∂W)^2]`` — the Fisher of the
model's own predictive distribution, not the empirical Fisher of the gold labels.  For
classification the expectation over y is exact by default (one backward per class,
``labels="expected"``, as in the paper), or a single ``sample``/``argmax`` label.  For regression the
output f is the mean of a unit-variance Gaussian: ``∇ log p = (y − f)∇f`` with ``E[(y − f)^2] = 1``, so
``F = E_x[(∇f)^2]`` exactly (no sampled noise; the Gauss–Newton diagonal).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from osrm_core.errors import OsrmError
from osrm_core.merge.types import MergeMethod, MergeResult, MethodParams, ModuleUpdates


class Params(MethodParams):
    """Fisher-merging parameters."""

    weights: list[float] | None = Field(None, description="per-task coefficients w_t multiplying F_t (default 1 each)")
    epsilon: float = Field(
        1e-6, ge=0, description="Fisher floor, relative to the mean Fisher entry of this module over tasks"
    )
    normalize: bool = Field(False, description="divide each task's Fisher by its mean (per module) before merging")


def merge(updates: ModuleUpdates, params: Params, generator: torch.Generator | None = None) -> MergeResult:
    """Dense ``Δ = Σ_t w_t F'_t ⊙ τ_t / Σ_t w_t F'_t`` (d_out × d_in), one task at a time."""
    updates.require("fishers")
    w = updates.task_weights(params.weights)
    fishers = [f.float() for f in updates.fishers]
    if params.normalize:
        fishers = [f / f.mean() if f.mean() > 0 else f for f in fishers]
    floor = params.epsilon * float(sum(f.mean() for f in fishers)) / len(fishers)
    if floor <= 0:  # all-zero Fishers (or ε = 0 with zeros): equal weights where nothing else is known
        floor = 1.0 if all(float(f.max()) <= 0 for f in fishers) else 0.0
    num = torch.zeros(updates.shape, dtype=torch.float32, device=updates.A[0].device)
    den = torch.zeros_like(num)
    for t in range(updates.num_tasks):
        f = (fishers[t] + floor).mul_(w[t])  # w_t F'_t
        num.add_(f * updates.delta(t))
        den.add_(f)
    delta = num.div_(torch.where(den == 0, torch.ones_like(den), den))
    return MergeResult(delta=delta, info={"fisher_floor": floor})


METHOD = MergeMethod(
    name="fisher",
    params=Params,
    fn=merge,
    paper="Matena & Raffel 2022, Merging Models with Fisher-Weighted Averaging, arXiv:2111.09832",
    needs=("fishers",),
)


# ---------------------------------------------------------------- computing the diagonal Fisher


def _effective_weight(model: nn.Module, name: str) -> Tensor:
    """The ``d_out × d_in`` weight whose gradient is the effective-weight gradient of module ``name``:
    an ``nn.Linear``'s weight, or a PEFT LoRA layer's base weight (y = W0 x + s B A x, so
    ∂L/∂W0 = ∂L/∂(W0 + sBA) when dropout is off)."""
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise OsrmError(f"Fisher: module {name!r} not found in the model; check target_modules.") from None
    base = module.get_base_layer() if hasattr(module, "get_base_layer") else module
    if not isinstance(base, nn.Linear):
        raise OsrmError(f"Fisher: module {name!r} is {type(base).__name__}, only nn.Linear targets are supported.")
    return base.weight


class _PerExampleSquares:
    """Forward hooks that, on every backward through a target module's output, add
    ``Σ_b (g_b^T x_b)^2`` to ``acc[name]``: g_b (L × d_out) the output gradient of example b,
    x_b (L × d_in) its input; ``g_b^T x_b`` is example b's gradient w.r.t. the module weight. With
    ``examples`` = n < B the B batch rows are n examples of B/n consecutive sequences each (a generative
    row's choices), whose tokens are stacked into one example."""

    def __init__(self, model: nn.Module, names: list[str], acc: dict[str, Tensor]):
        self.model, self.names, self.acc = model, names, acc
        self.examples = 0  # examples of the current batch (0: one per batch row)
        self.calls: dict[str, int] = {}
        self.handles: list = []

    def __enter__(self) -> "_PerExampleSquares":
        for name in self.names:
            self.handles.append(self.model.get_submodule(name).register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()

    def _hook(self, name: str):
        def on_forward(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.calls[name] > 1:
                msg = "runs more than once per forward; shared weights are not supported"
                raise OsrmError(f"Fisher: module {name!r} {msg}.")
            x = inputs[0].detach().float()

            def on_grad(g: Tensor) -> None:
                gb, xb = g.detach().float(), x
                if gb.dim() == 2:  # B × d → B × 1 × d
                    gb, xb = gb[:, None], xb[:, None]
                n = self.examples or gb.shape[0]  # an example's sequences side by side (a row's choices)
                gb, xb = gb.reshape(n, -1, gb.shape[-1]), xb.reshape(n, -1, xb.shape[-1])
                for b in range(n):  # one example at a time: d_out × d_in memory
                    self.acc[name].add_((gb[b].T @ xb[b]).square_())

            output.register_hook(on_grad)

        return on_forward


@contextmanager
def _fisher_mode(model: nn.Module, weights: list[Tensor]) -> Iterator[None]:
    """eval() (dropout off) and requires_grad on the target weights, restored afterwards."""
    was_training, was_req = model.training, [w.requires_grad for w in weights]
    model.eval()
    for w in weights:
        w.requires_grad_(True)
    try:
        with torch.enable_grad():
            yield
    finally:
        model.train(was_training)
        for w, r in zip(weights, was_req):
            w.requires_grad_(r)


def class_objectives(logits: Tensor, regression: bool, labels: str, generator: torch.Generator | None) -> list[Tensor]:
    """Scalar objectives, one backward each, whose per-example gradients squared and summed give the
    per-example Fisher: Σ_b c_b ℓ_b with c_b = √p(y|x_b) for the exact expectation over classes."""
    logits = logits.float().reshape(logits.shape[0], -1)  # B × C
    if regression:
        return [logits[:, k].sum() for k in range(logits.shape[1])]  # F = Σ_k (∇ f_k)^2
    logp = torch.log_softmax(logits, dim=-1)
    probs = logp.detach().exp()
    if labels == "expected":
        return [(probs[:, c].sqrt() * logp[:, c]).sum() for c in range(logp.shape[1])]
    y = probs.argmax(-1) if labels == "argmax" else torch.multinomial(probs, 1, generator=generator)[:, 0]
    return [logp.gather(1, y[:, None]).sum()]


def _classifier_objective(regression: bool) -> Callable:
    """The objective of a model whose output has ``.logits`` B × C (a classifier): one example per batch row."""
    def objective(model: nn.Module, batch: dict, labels: str, generator: torch.Generator | None):
        out = model(**batch)
        logits = getattr(out, "logits", out)
        return class_objectives(logits, regression, labels, generator), logits.shape[0]

    return objective


def diag_fisher(
    model: nn.Module,
    batches: Iterable[Any],
    module_names: list[str],
    regression: bool,
    *,
    labels: Literal["expected", "sample", "argmax"] = "expected",
    generator: torch.Generator | None = None,
    objective: Callable | None = None,
) -> dict[str, Tensor]:
    """Diagonal Fisher (float32, ``d_out × d_in``) of each named ``nn.Linear`` / PEFT LoRA layer's
    effective weight, averaged over all examples of ``batches`` (dicts accepted by ``model(**batch)``,
    whose output has ``.logits`` of shape B × C).  Each target module must run once per forward.
    ``objective(model, batch, labels, generator) -> (objectives, examples)`` replaces the classifier's
    (osrm_core.generative.fisher: a generative task's batches and objectives).
    The model is left as it was (training mode, requires_grad, no ``.grad`` written)."""
    weights = [_effective_weight(model, n) for n in module_names]
    acc = {n: torch.zeros(w.shape, dtype=torch.float32, device=w.device) for n, w in zip(module_names, weights)}
    n_examples = 0
    with _fisher_mode(model, weights), _PerExampleSquares(model, module_names, acc) as hooks:
        for batch in batches:
            hooks.calls.clear()
            objs, hooks.examples = (objective or _classifier_objective(regression))(model, batch, labels, generator)
            for i, obj in enumerate(objs):
                torch.autograd.grad(obj, weights, retain_graph=i < len(objs) - 1, allow_unused=True)
            n_examples += hooks.examples
    if n_examples == 0:
        raise OsrmError("Fisher: no examples in the Fisher batches; give the merge stage a non-empty fisher split.")
    return {n: a.div_(n_examples) for n, a in acc.items()}
