"""Interference diagnostics: Gram-based shifts equal the output shifts measured by running a tiny BERT with
PEFT adapters attached; closed-form checks of output_shift, energy_ratio, drift and E."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from osrm_core.diagnose import Interference, drift, energy_ratio, energy_shares, interference, output_shift
from osrm_core.errors import OsrmError

D, R, ALPHA = 32, 4, 8.0
TASKS = ["alpha", "beta", "gamma"]


def _tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=D, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertModel(cfg).double().eval()


def _task_batches() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per task: (input_ids 4 x 10, attention_mask 4 x 10) with right padding; each task its own token range."""
    gen = torch.Generator().manual_seed(1)
    out = {}
    for k, t in enumerate(TASKS):
        ids = torch.randint(1 + 30 * k, 30 + 30 * k, (4, 10), generator=gen)
        mask = (torch.arange(10) < torch.tensor([[10], [7], [4], [9]])).long()
        out[t] = (ids * mask, mask)  # padding id 0
    return out


def _base_grams(model, batches) -> tuple[list[str], dict[str, dict[str, torch.Tensor]]]:
    """Token Grams of the inputs of every query/value linear, non-padding tokens only, by forward pre-hooks."""
    names = [n for n, _ in model.named_modules() if n.endswith(("query", "value"))]
    grams = {t: {n: torch.zeros(D, D, dtype=torch.float64) for n in names} for t in batches}
    modules = dict(model.named_modules())
    for t, (ids, mask) in batches.items():
        def hook(name):
            def pre(_mod, inputs):
                h = inputs[0][mask.bool()]  # N x D real tokens
                grams[t][name] += h.T @ h
            return pre
        handles = [modules[n].register_forward_pre_hook(hook(n)) for n in names]
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        for h in handles:
            h.remove()
    return names, grams


def _random_factors(names, scale) -> dict[str, dict[str, tuple]]:
    gen = torch.Generator().manual_seed(2)
    return {t: {n: (torch.randn(R, D, generator=gen, dtype=torch.float64) / D**0.5,
                    torch.randn(D, R, generator=gen, dtype=torch.float64) / R**0.5, scale) for n in names} for t in TASKS}


def _attach(model, names, factors, rslora: bool):
    """A PEFT model holding one adapter per task, the given factors copied in."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=["query", "value"], use_rslora=rslora)
    peft_model = get_peft_model(model, cfg, adapter_name=TASKS[0])
    for t in TASKS[1:]:
        peft_model.add_adapter(t, cfg)
    peft_model.double().eval()
    modules = dict(peft_model.base_model.model.named_modules())
    with torch.no_grad():
        for t in TASKS:
            for n in names:
                a, b, _ = factors[t][n]
                modules[n].lora_A[t].weight.copy_(a)
                modules[n].lora_B[t].weight.copy_(b)
    return peft_model, modules


def _hook_shifts(peft_model, modules, names, batches, propagate_base: bool) -> torch.Tensor:
    """shifts[m, i, j] = sum over task i's real tokens of ||lora_j(x) - base(x)||^2 at module m, by forward hooks.

    With propagate_base the hooked module returns the base output, so every layer sees the base model's inputs."""
    shifts = torch.zeros(len(names), len(TASKS), len(TASKS), dtype=torch.float64)
    for j, tj in enumerate(TASKS):
        peft_model.set_adapter(tj)
        for i, ti in enumerate(TASKS):
            ids, mask = batches[ti]

            def hook(k):
                def post(mod, inputs, output):
                    base = mod.base_layer(inputs[0])
                    shifts[k, i, j] += ((output - base)[mask.bool()] ** 2).sum()
                    return base if propagate_base else None
                return post
            handles = [modules[n].register_forward_hook(hook(k)) for k, n in enumerate(names)]
            with torch.no_grad():
                peft_model(input_ids=ids, attention_mask=mask)
            for h in handles:
                h.remove()
    return shifts


@pytest.fixture(scope="module")
def bert_setup():
    model = _tiny_bert()
    batches = _task_batches()
    names, grams = _base_grams(model, batches)
    return model, batches, names, grams


@pytest.mark.parametrize("rslora", [False, True])
def test_gram_interference_equals_forward_hooks(bert_setup, rslora):
    model, batches, names, grams = bert_setup
    scale = ALPHA / (R**0.5 if rslora else R)
    factors = _random_factors(names, scale)
    peft_model, modules = _attach(copy.deepcopy(model), names, factors, rslora)
    measured = _hook_shifts(peft_model, modules, names, batches, propagate_base=True)
    res = interference(grams, factors)
    assert res.modules == names and res.tasks == TASKS
    assert bool((measured > 0).all())
    torch.testing.assert_close(res.shifts, measured, rtol=1e-5, atol=0)
    total = measured.sum(0)
    torch.testing.assert_close(res.matrix, total / total.diagonal().unsqueeze(1), rtol=1e-5, atol=0)
    torch.testing.assert_close(res.matrix.diagonal(), torch.ones(3, dtype=torch.float64))


def test_base_grams_are_first_order_beyond_the_first_layer(bert_setup):
    """With the adapter really propagating, layer 0 still matches exactly; layer 1 sees shifted inputs."""
    model, batches, names, grams = bert_setup
    factors = _random_factors(names, ALPHA / R)
    peft_model, modules = _attach(copy.deepcopy(model), names, factors, rslora=False)
    measured = _hook_shifts(peft_model, modules, names, batches, propagate_base=False)
    res = interference(grams, factors)
    first = [k for k, n in enumerate(names) if ".0." in n]
    later = [k for k, n in enumerate(names) if ".1." in n]
    torch.testing.assert_close(res.shifts[first], measured[first], rtol=1e-5, atol=0)
    rel = ((res.shifts[later] - measured[later]).abs() / measured[later]).max()
    assert rel > 1e-4


def test_output_shift_matches_dense_formula():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(5, 12, generator=gen), torch.randn(7, 5, generator=gen)
    h = torch.randn(40, 12, generator=gen, dtype=torch.float64)
    gram = h.T @ h
    dw = 1.7 * (b.double() @ a.double())
    dense = torch.trace(dw @ gram @ dw.T)
    assert output_shift(a, b, 1.7, gram) == pytest.approx(float(dense), rel=1e-12)
    assert output_shift(a, b, 1.7, gram) == pytest.approx(float(((h @ dw.T) ** 2).sum()), rel=1e-12)
    with pytest.raises(OsrmError, match="do not fit"):
        output_shift(a, b, 1.0, gram[:6, :6])


def test_energy_ratio_isotropic_and_planted():
    gen = torch.Generator().manual_seed(4)
    d, r = 12, 3
    a = torch.randn(r, d, generator=gen, dtype=torch.float64)
    assert energy_ratio(a, 2.5 * torch.eye(d, dtype=torch.float64)) == pytest.approx(1.0, rel=1e-12)
    lam = torch.arange(1, d + 1, dtype=torch.float64) ** 2
    s = torch.diag(lam)
    # Haar-random spans (Gaussian A) capture 1 in expectation for any S
    mean = sum(energy_ratio(torch.randn(r, d, generator=gen, dtype=torch.float64), s) for _ in range(400)) / 400
    assert mean == pytest.approx(1.0, abs=0.05)
    # planted: A spans the last r coordinates (mixed by an invertible r x r): exactly d/r times the captured share
    mix = torch.randn(r, r, generator=gen, dtype=torch.float64) + 3 * torch.eye(r, dtype=torch.float64)
    planted = mix @ torch.eye(d, dtype=torch.float64)[-r:]
    assert energy_ratio(planted, s) == pytest.approx(float(lam[-r:].sum() / lam.sum()) * d / r, rel=1e-12)
    rot = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))[0]  # the same in any basis
    assert energy_ratio(planted @ rot.T, rot @ s @ rot.T) == pytest.approx(energy_ratio(planted, s), rel=1e-10)


def test_energy_shares_own_and_other():
    d, r = 6, 2
    e = torch.eye(d, dtype=torch.float64)
    grams = {"x": {"m": 10 * torch.diag(torch.tensor([1.0, 1, 0, 0, 0, 0], dtype=torch.float64))},
             "y": {"m": 3 * torch.diag(torch.tensor([0.0, 0, 1, 1, 1, 1], dtype=torch.float64))}}
    counts = {"x": {"m": 10}, "y": {"m": 3}}
    res = energy_shares(grams, counts, {"x": {"m": e[:2]}, "y": {"m": e[2:4]}})
    assert res.own[0, 0] == pytest.approx(3.0) and res.other[0, 0] == pytest.approx(0.0)  # x's A on x: all of it, d/r = 3
    assert res.own[1, 0] == pytest.approx(0.5 * 3) and res.other[1, 0] == pytest.approx(0.0)
    out = res.as_dict()
    assert out["own"]["x"]["m"] == pytest.approx(3.0) and json.dumps(out)
    with pytest.raises(OsrmError, match="token count 0"):
        energy_shares(grams, {"x": {"m": 0}, "y": {"m": 3}}, {"x": {"m": e[:2]}, "y": {"m": e[2:4]}})


def test_drift():
    gen = torch.Generator().manual_seed(5)
    a0 = {t: {"m1": torch.randn(3, 8, generator=gen), "m2": torch.randn(3, 8, generator=gen)} for t in ("x", "y")}
    same = drift(a0, a0)
    assert float(same.values.abs().max()) == 0.0
    moved = drift({t: {m: 1.5 * a for m, a in ms.items()} for t, ms in a0.items()}, a0)
    torch.testing.assert_close(moved.values, torch.full((2, 2), 0.5, dtype=torch.float64))
    assert moved.as_dict()["mean"] == pytest.approx(0.5)
    with pytest.raises(OsrmError, match="not the one"):
        drift({t: {m: a[:2] for m, a in ms.items()} for t, ms in a0.items()}, a0)


def _blocks(d=8, k=3) -> tuple[dict, dict]:
    """Task x's tokens live in coords < k; y's A reads only coords >= k, so A_y h_x = 0 exactly."""
    gen = torch.Generator().manual_seed(6)
    hx = torch.randn(20, d, generator=gen, dtype=torch.float64)
    hx[:, k:] = 0
    hy = torch.randn(20, d, generator=gen, dtype=torch.float64)
    ax, ay = torch.randn(2, d, generator=gen, dtype=torch.float64), torch.randn(2, d, generator=gen, dtype=torch.float64)
    ay[:, :k] = 0
    grams = {"x": {m: hx.T @ hx for m in ("l.0.q", "l.1.q")}, "y": {m: hy.T @ hy for m in ("l.0.q", "l.1.q")}}
    factors = {t: {m: (a, torch.randn(5, 2, generator=gen, dtype=torch.float64), 2.0) for m in ("l.0.q", "l.1.q")}
               for t, a in (("x", ax), ("y", ay))}
    return grams, factors


def test_orthogonal_update_gives_zero_interference_and_json_roundtrip():
    grams, factors = _blocks()
    res = interference(grams, factors)
    assert float(res.matrix[0, 1]) == 0.0 and float(res.matrix[1, 0]) > 0
    torch.testing.assert_close(res.matrix.diagonal(), torch.ones(2, dtype=torch.float64))
    assert float(res.per_module[:, 0, 1].abs().max()) == 0.0
    summary = res.summary()
    assert summary["median_offdiag"] == pytest.approx(float(res.matrix[1, 0]) / 2)  # midpoint of the two pairs
    assert all(isinstance(v, float) for v in summary["module_median_offdiag"].values())
    back = Interference.from_json(json.loads(json.dumps(res.as_dict())))
    torch.testing.assert_close(back.shifts, res.shifts)
    assert back.tasks == res.tasks and back.modules == res.modules


def test_interference_rejects_bad_input():
    grams, factors = _blocks()
    with pytest.raises(OsrmError, match="at least two tasks"):
        interference({"x": grams["x"]}, {"x": factors["x"]})
    with pytest.raises(OsrmError, match="differ"):
        interference(grams, {"x": factors["x"], "z": factors["y"]})
    with pytest.raises(OsrmError, match="same lora.blocks"):
        interference({"x": grams["x"], "y": {"l.0.q": grams["y"]["l.0.q"]}}, factors)
    a, b, s = factors["y"]["l.1.q"]
    zero_b = {**factors, "y": {**factors["y"], "l.1.q": (a, torch.zeros_like(b), s)}}
    with pytest.raises(OsrmError, match="task 'y'.*l.1.q"):
        interference(grams, zero_b)


def test_modules_sorted_naturally():
    grams, factors = _blocks()
    def rename(nested):
        return {t: {m.replace("l.1.", "l.10.").replace("l.0.", "l.2."): v for m, v in ms.items()} for t, ms in nested.items()}

    assert interference(rename(grams), rename(factors)).modules == ["l.2.q", "l.10.q"]


def test_plots_write_png(tmp_path):
    from osrm_core.diagnose_plots import heatmaps, per_layer

    grams, factors = _blocks()
    res = interference(grams, factors)
    other = Interference(res.tasks, res.modules, res.shifts * torch.tensor([[1.0, 2.0], [0.5, 1.0]], dtype=torch.float64))
    arms = {"lora": res, "osrm": other}
    heatmaps(arms, tmp_path / "heat.png")
    per_layer(arms, tmp_path / "layers.png")
    for name in ("heat.png", "layers.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    with pytest.raises(OsrmError, match="other tasks/modules"):
        heatmaps({"lora": res, "bad": Interference(["x", "z"], res.modules, res.shifts)}, tmp_path / "x.png")
