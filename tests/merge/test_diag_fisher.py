"""diag_fisher on tiny models against a naive per-example, per-class autograd loop."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from merge_testlib import assert_close
from torch import nn

from osrm_core.errors import OsrmError
from osrm_core.merge.fisher import diag_fisher


class Tiny(nn.Module):
    """Token encoder → mean pool → head; ``forward(x=B×L×4)`` returns ``.logits`` (B × C)."""

    def __init__(self, num_out: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.enc = nn.Linear(4, 6)
        self.head = nn.Linear(6, num_out)

    def forward(self, x):
        return SimpleNamespace(logits=self.head(torch.tanh(self.enc(x)).mean(dim=1)))


def batches(n_batches=2, bsz=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"x": torch.randn(bsz, 5, 4, generator=g)} for _ in range(n_batches)]


def naive_fisher(model, data, names, regression):
    """(1/N) Σ_n Σ_y p(y|x_n) (∂ log p(y|x_n)/∂W)^2, one example and one class at a time."""
    mods = {n: model.get_submodule(n) for n in names}
    acc = {n: torch.zeros_like(m.weight) for n, m in mods.items()}
    count = 0
    for batch in data:
        for i in range(batch["x"].shape[0]):
            out = model(x=batch["x"][i:i + 1]).logits[0]
            terms = [(1.0, out[k]) for k in range(out.numel())] if regression else \
                [(float(p), lp) for p, lp in zip(torch.softmax(out.detach(), -1), torch.log_softmax(out, -1))]
            for p, obj in terms:
                grads = torch.autograd.grad(obj, [m.weight for m in mods.values()], retain_graph=True)
                for n, g in zip(names, grads):
                    acc[n] += p * g ** 2
            count += 1
    return {n: a / count for n, a in acc.items()}


@pytest.mark.parametrize("regression", [False, True])
def test_diag_fisher_matches_naive_per_example_loop(regression):
    model = Tiny(num_out=1 if regression else 3)
    data = batches()
    names = ["enc", "head"]
    fast = diag_fisher(model, data, names, regression)
    slow = naive_fisher(model, data, names, regression)
    for n in names:
        assert fast[n].shape == model.get_submodule(n).weight.shape
        assert_close(fast[n], slow[n], rtol=1e-4, atol=1e-7)


def test_diag_fisher_sampled_labels_are_seeded_and_model_is_restored():
    model = Tiny()
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    a = diag_fisher(model, batches(), ["enc"], False, labels="sample", generator=torch.Generator().manual_seed(1))
    b = diag_fisher(model, batches(), ["enc"], False, labels="sample", generator=torch.Generator().manual_seed(1))
    assert torch.equal(a["enc"], b["enc"]) and a["enc"].abs().sum() > 0
    assert model.training and not any(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    argmax = diag_fisher(model, batches(), ["enc"], False, labels="argmax")
    assert argmax["enc"].shape == (6, 4)


def test_diag_fisher_of_a_lora_layer_is_that_of_its_effective_weight():
    peft = pytest.importorskip("peft")
    model = Tiny(seed=1)
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["enc"], init_lora_weights=False)
    lora = peft.get_peft_model(model, config)
    layer = lora.get_submodule("base_model.model.enc")
    delta = layer.get_delta_weight("default")
    assert delta.abs().sum() > 0
    got = diag_fisher(lora, batches(), ["base_model.model.enc"], False)["base_model.model.enc"]
    plain = Tiny(seed=1)
    with torch.no_grad():
        plain.enc.weight.copy_(layer.get_base_layer().weight + delta)
        plain.head.load_state_dict(lora.get_submodule("base_model.model.head").state_dict())
    want = diag_fisher(plain, batches(), ["enc"], False)["enc"]
    assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_diag_fisher_errors_are_user_errors():
    with pytest.raises(OsrmError, match="not found"):
        diag_fisher(Tiny(), batches(), ["nope"], False)
    with pytest.raises(OsrmError, match="no examples"):
        diag_fisher(Tiny(), [], ["enc"], False)
