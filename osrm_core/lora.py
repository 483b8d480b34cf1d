"""LoRA adapters through PEFT: build, initialise (INITS: gaussian, kaiming, osrm A <- A_t, orthonormal; B <- 0;
then lora.a_norm's scale; refit, posthoc: another arm's update converted, osrm_core/derive.py), freeze, project, measure."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from osrm_core import derive
from osrm_core.errors import OsrmError
from osrm_core.subspace import normalised_distance, polar, random_orthonormal

PEFT_PREFIX = "base_model.model."


def attach_lora(model: nn.Module, suffixes: list[str], heads: list[str], rank: int, alpha: float, dropout: float = 0.0,
                rslora: bool = False, init: str = "gaussian", task_type: str | None = None):
    """Wrap `model` with a PEFT LoRA of rank r on the target suffixes, scale alpha/r (alpha/sqrt(r) with rslora);
    PEFT draws A as INITS[init].peft says; the task heads train and save with it. `task_type`: PEFT's (CAUSAL_LM
    for a generative task: a plain causal-LM adapter; None keeps the classifier's wrapping)."""
    from peft import LoraConfig, get_peft_model

    pcfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=suffixes,
                      use_rslora=rslora, init_lora_weights=INITS[init].peft, modules_to_save=heads or None,
                      bias="none", task_type=task_type)
    return get_peft_model(model, pcfg)


def lora_layers(peft_model: nn.Module) -> dict[str, nn.Module]:
    """Base-model module name (no PEFT prefix) -> its LoRA layer."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for name, mod in peft_model.named_modules():
        if isinstance(mod, LoraLayer):
            out[name.removeprefix(PEFT_PREFIX)] = mod
    return out


Shapes = dict[str, tuple[int, int]]  # module -> (r, d_in) of its lora_A


def a_shapes(peft_model: nn.Module, adapter: str = "default") -> Shapes:
    """{module: (r, d_in)} of every lora_A: what an init's a0 draws for."""
    return {n: tuple(l.lora_A[adapter].weight.shape) for n, l in lora_layers(peft_model).items()}


def subspace_a0(shapes: Shapes, seed: int, subspace: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """init osrm: A_0 = A_t, the task's subspace (r x d_in per module), so the model starts exactly at W0
    (docs/osrm.md, "Fine-tuning with the subspace"); `seed` is not used."""
    if subspace is None:
        raise OsrmError("init osrm needs the task's subspace — run `osrm build-subspace` for this arm first")
    missing = sorted(set(shapes) - set(subspace))
    if missing:
        raise OsrmError(f"subspace has no A for {missing[:2]}... — rebuild it with the same lora.blocks and backbone")
    for name, shape in shapes.items():
        if tuple(subspace[name].shape) != shape:
            raise OsrmError(f"subspace A for {name} is {tuple(subspace[name].shape)}, LoRA A is {shape} — rebuild the "
                            f"subspace with lora.rank={shape[0]}")
    return {name: subspace[name] for name in shapes}


def orthonormal_a0(shapes: Shapes, seed: int, subspace: dict | None = None) -> dict[str, torch.Tensor]:
    """init orthonormal, the control arm: a seeded random A_0 with orthonormal rows (r x d_in, float64; the norm
    of an OSRM A, sqrt(r), without its subspace). Module i in name order draws from seed + i — the one statement
    of this rule: finetune (initialise) and diagnose (its A_0) both call it."""
    return {name: random_orthonormal(*shapes[name], seed + i) for i, name in enumerate(sorted(shapes))}


@torch.no_grad()
def set_a0(peft_model: nn.Module, a0: dict[str, torch.Tensor], adapter: str = "default") -> None:
    """lora_A <- A_0 (in A's dtype), lora_B <- 0 for every module of `a0`."""
    layers = lora_layers(peft_model)
    for name, a in a0.items():
        layers[name].lora_A[adapter].weight.copy_(a)
        layers[name].lora_B[adapter].weight.zero_()


@dataclass(frozen=True)
class InitMethod:
    """How one `init` starts each lora_A (lora_B = 0 for all). `peft`: PEFT's init_lora_weights when the adapter
    is attached (attach_lora; PEFT draws A from torch's global RNG then); `a0(shapes, seed, subspace)`: the A_0
    (r x d_in per module of `shapes`) that overwrites A after attaching, before lora.a_norm's scale, from the
    shapes, the run's seed and the task's subspace (None = keep PEFT's draw: not reproducible outside finetune);
    `needs_subspace`: build-subspace builds this arm subspaces (a0 or start reads them; the report shows their
    regime, convert projects into them); `norm(r, d_in)`: the expected Frobenius norm of A_0,
    sqrt(E||A_0||_F^2), for an r x d_in A (what lora.a_norm {match: <arm>} gives). An arm that starts from another
    arm's adapters (`from`) has `start(derive.Source) -> {module: (A, B)}`, the converted update it starts at (A and
    B set, no a_norm), and `trains`: False when that converted update is the adapter. `reads`: the arm's fields
    besides `init` this init uses (the pipeline config rejects any other one set on the arm)."""

    peft: bool | str
    norm: Callable[[int, int], float]
    a0: Callable[[Shapes, int, dict | None], dict[str, torch.Tensor]] | None = None
    needs_subspace: bool = False
    start: Callable[[derive.Source], derive.Factors] | None = None
    trains: bool = True
    reads: frozenset[str] = frozenset()


INITS: dict[str, InitMethod] = {
    # PEFT: nn.init.normal_(A, std=1/r) -> E||A||_F^2 = r * d_in / r^2 = d_in / r
    "gaussian": InitMethod("gaussian", lambda r, d: math.sqrt(d / r)),
    # PEFT's default (True): kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(d_in), 1/sqrt(d_in)), var 1/(3 d_in): r/3
    "kaiming": InitMethod(True, lambda r, d: math.sqrt(r / 3)),
    # both overwrite PEFT's gaussian draw (drawn anyway, so the RNG stream after attaching is the gaussian arm's); rows orthonormal
    "osrm": InitMethod("gaussian", lambda r, d: math.sqrt(r), subspace_a0, needs_subspace=True),
    "orthonormal": InitMethod("gaussian", lambda r, d: math.sqrt(r), orthonormal_a0),
    # the paper's post mode: A = A_t (orthonormal rows), B from the projected update; then refit_epochs of fine-tuning
    "refit": InitMethod("gaussian", lambda r, d: math.sqrt(r), needs_subspace=True, start=derive.project_start,
                        reads=frozenset({"from", "refit_epochs"})),
    # the post-hoc projection that keeps keep_share of the own output shift: A' orthonormal rows, no training
    "posthoc": InitMethod("gaussian", lambda r, d: math.sqrt(r), start=derive.posthoc_start, trains=False,
                          reads=frozenset({"from", "keep_share"})),
}


ANorm = float | str | None  # what target_norm reads: keep the init's norm, a number, or an init's expected norm


def target_norm(a_norm: ANorm, rank: int, d_in: int) -> float | None:
    """The Frobenius norm asked of an r x d_in A_0: None keeps it (None); a number is that norm; an init's name
    is its expected norm for the shape, INITS[name].norm(r, d_in) (docs/study.md, "The scale confound")."""
    if a_norm is None:
        return None
    if isinstance(a_norm, str):
        return INITS[a_norm].norm(rank, d_in)
    return float(a_norm)


def scale_to_norm(a: torch.Tensor, target: float | None) -> torch.Tensor:
    """A * target / ||A||_F (in float64, back in A's dtype); A itself when target is None. finetune and
    diagnose both rescale with this, so their A_0 agree exactly."""
    if target is None:
        return a
    a64 = a.double()
    return (a64 * (target / float(torch.linalg.matrix_norm(a64)))).to(a.dtype)


@torch.no_grad()
def initialise(peft_model: nn.Module, init: str, seed: int, subspace: dict[str, torch.Tensor] | None = None,
               a_norm: ANorm = None, adapter: str = "default") -> None:
    """Start every lora_A as `init` says (INITS; PEFT already drew it in attach_lora), then rescale each
    module's A_0 (r x d_in) to the Frobenius norm `a_norm` asks (target_norm; None touches nothing).
    subspace: module -> A_t (r x d_in), read by init osrm."""
    method = INITS[init]
    if method.a0 is not None:
        set_a0(peft_model, method.a0(a_shapes(peft_model, adapter), seed, subspace), adapter)
    if method.start is not None or a_norm is None:
        return  # a derived arm's A and B are set from its converted update (set_factors), never rescaled
    for layer in lora_layers(peft_model).values():
        a = layer.lora_A[adapter].weight
        a.copy_(scale_to_norm(a, target_norm(a_norm, *a.shape)))


@torch.no_grad()
def set_factors(peft_model: nn.Module, factors: dict[str, tuple[torch.Tensor, torch.Tensor]], adapter: str = "default") -> None:
    """lora_A <- A, lora_B <- B for every module (a derived arm's start: s B A is the converted update)."""
    layers = lora_layers(peft_model)
    if set(layers) != set(factors):
        odd = sorted(set(layers) ^ set(factors))[0]
        raise OsrmError(f"the source adapter and this arm target different modules (e.g. {odd}) — give the arm the "
                        "source arm's lora.blocks")
    for name, layer in layers.items():
        a, b = factors[name]
        wa, wb = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
        if tuple(a.shape) != tuple(wa.shape) or tuple(b.shape) != tuple(wb.shape):
            raise OsrmError(f"{name}: the converted A {tuple(a.shape)} / B {tuple(b.shape)} do not fit this arm's LoRA "
                            f"{tuple(wa.shape)} / {tuple(wb.shape)} — set the arm's lora.rank to the subspace's rank")
        wa.copy_(a.to(wa.dtype))
        wb.copy_(b.to(wb.dtype))


@torch.no_grad()
def set_start(peft_model: nn.Module, factors: dict[str, tuple[torch.Tensor, torch.Tensor]], head: dict[str, torch.Tensor],
              source_arm: str) -> None:
    """A derived arm's start: the LoRA factors (set_factors) and the trainable head copy (modules_to_save) set to those
    converted from arm `source_arm`'s adapter."""
    set_factors(peft_model, factors)
    copies = {n.replace(".modules_to_save.default.", ".").removeprefix(PEFT_PREFIX): p  # the trained copy of each head tensor
              for n, p in peft_model.named_parameters() if ".modules_to_save.default." in n}
    for name, t in head.items():
        if name not in copies or tuple(copies[name].shape) != tuple(t.shape):
            raise OsrmError(f"head tensor {name} {tuple(t.shape)} of arm {source_arm}'s adapter does not fit "
                            "this arm's model — start it from an arm of the same backbone and tasks")
        copies[name].copy_(t)


def a_norms(a: dict[str, torch.Tensor]) -> dict[str, float]:
    """||A||_F per module."""
    return {n: float(torch.linalg.matrix_norm(t.double())) for n, t in a.items()}


def set_freeze(peft_model: nn.Module, freeze: str, adapter: str = "default") -> None:
    """freeze 'A' or 'B' stops that factor's gradient; 'N' trains both (paper default)."""
    for layer in lora_layers(peft_model).values():
        layer.lora_A[adapter].weight.requires_grad_(freeze != "A")
        layer.lora_B[adapter].weight.requires_grad_(freeze != "B")


@torch.no_grad()
def project_orthonormal(peft_model: nn.Module, adapter: str = "default") -> None:
    """Procrustes relaxation: A <- U V^T, the nearest matrix with orthonormal rows."""
    for layer in lora_layers(peft_model).values():
        w = layer.lora_A[adapter].weight
        w.copy_(polar(w))


def a_matrices(peft_model: nn.Module, adapter: str = "default") -> dict[str, torch.Tensor]:
    """Detached copies of every lora_A (r x d_in)."""
    return {n: l.lora_A[adapter].weight.detach().clone() for n, l in lora_layers(peft_model).items()}


def a_drift(a_end: dict[str, torch.Tensor], a_start: dict[str, torch.Tensor]) -> dict[str, float]:
    """||A_end - A_0||_F / ||A_0||_F per module (the paper's Figure 3)."""
    return {n: normalised_distance(a_end[n], a_start[n]) for n in a_start}


def adapter_parameters(peft_model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of what an adapter holds: every LoRA factor (a frozen A or B too, so the saved adapter
    always has both) and the other trainable tensors (the head)."""
    return [(n, p) for n, p in peft_model.named_parameters() if p.requires_grad or ".lora_A." in n or ".lora_B." in n]


def trainable_state(peft_model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of adapter_parameters (model selection keeps these)."""
    return {n: p.detach().clone() for n, p in adapter_parameters(peft_model)}


@torch.no_grad()
def load_trainable(peft_model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(peft_model.named_parameters())
    for n, t in state.items():
        params[n].copy_(t)
