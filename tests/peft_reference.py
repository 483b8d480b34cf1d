"""PEFT as the reference the conversion tests compare with."""

import torch


def merged_delta(model) -> dict[str, torch.Tensor]:
    """PEFT's own update per target module (d_out x d_in): merge_and_unload() weight minus W0."""
    w0 = {n[len("base_model.model."):-len(".base_layer.weight")]: p.detach().clone()
          for n, p in model.named_parameters() if n.endswith(".base_layer.weight")}
    merged = dict(model.merge_and_unload().named_modules())
    return {m: merged[m].weight.detach() - w for m, w in w0.items()}
