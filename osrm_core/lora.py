"""LoRA adapters through PEFT: build, OSRM-initialise (A <- A_t, B <- 0), freeze, project, measure."""

from __future__ import annotations

import torch
from torch import nn

from osrm_core.config import LoraConfig as LoraCfg
from osrm_core.errors import OsrmError
from osrm_core.subspace import normalised_distance, polar, random_orthonormal

PEFT_PREFIX = "base_model.model."


def attach_lora(model: nn.Module, suffixes: list[str], cfg: LoraCfg, heads: list[str]):
    """Wrap `model` with a PEFT LoRA on the target suffixes; the task heads train and save with it."""
    from peft import LoraConfig, get_peft_model

    pcfg = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=suffixes,
                      use_rslora=cfg.rslora, init_lora_weights="gaussian", modules_to_save=heads, bias="none")
    return get_peft_model(model, pcfg)


def lora_layers(peft_model: nn.Module) -> dict[str, nn.Module]:
    """Base-model module name (no PEFT prefix) -> its LoRA layer."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for name, mod in peft_model.named_modules():
        if isinstance(mod, LoraLayer):
            out[name.removeprefix(PEFT_PREFIX)] = mod
    return out


@torch.no_grad()
def osrm_init(peft_model: nn.Module, subspace: dict[str, torch.Tensor], adapter: str = "default") -> None:
    """lora_A <- A_t (r x d_in), lora_B <- 0: the model starts exactly at W0 (docs/osrm.md, "Fine-tuning with the subspace")."""
    layers = lora_layers(peft_model)
    missing = sorted(set(layers) - set(subspace))
    if missing:
        raise OsrmError(f"subspace has no A for {missing[:2]}... — rebuild it with the same lora.blocks and backbone")
    for name, layer in layers.items():
        a = layer.lora_A[adapter].weight
        if tuple(subspace[name].shape) != tuple(a.shape):
            raise OsrmError(f"subspace A for {name} is {tuple(subspace[name].shape)}, LoRA A is {tuple(a.shape)} — rebuild the subspace with lora.rank={a.shape[0]}")
        a.copy_(subspace[name].to(a.dtype))
        layer.lora_B[adapter].weight.zero_()


@torch.no_grad()
def orthonormal_init(peft_model: nn.Module, seed: int, adapter: str = "default") -> None:
    """The control arm: each lora_A <- a seeded random matrix with orthonormal rows (r x d_in; the norm of an
    OSRM A, sqrt(r), without its subspace), lora_B <- 0. Module i draws from seed + i (modules in name order)."""
    for i, (name, layer) in enumerate(sorted(lora_layers(peft_model).items())):
        a = layer.lora_A[adapter].weight
        a.copy_(random_orthonormal(a.shape[0], a.shape[1], seed + i).to(a.dtype))
        layer.lora_B[adapter].weight.zero_()


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


def trainable_state(peft_model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of what an adapter holds: every LoRA factor (a frozen A or B too, so the saved adapter
    always has both) and the other trainable tensors (the head). Model selection keeps these."""
    return {n: p.detach().clone() for n, p in peft_model.named_parameters()
            if p.requires_grad or ".lora_A." in n or ".lora_B." in n}


@torch.no_grad()
def load_trainable(peft_model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(peft_model.named_parameters())
    for n, t in state.items():
        params[n].copy_(t)
