"""How each arm's A starts (osrm_core.lora.INITS) and its scale (lora.a_norm): a number sets each module's
||A_0||_F, {match: <arm>} gives that arm's expected norm, 'as_init' is bit-identical to the init alone, kaiming
is PEFT's own default init, a bad match is a one-line config error (docs/study.md, "The scale confound")."""

from __future__ import annotations

import math
import typing

import pytest
import torch
import yaml

from osrm_core import lora
from osrm_core.errors import OsrmError
from osrm_core.report import individual_table
from osrm_core.subspace import random_orthonormal
from osrm_pipeline.config_sections import Init
from osrm_pipeline.pipeline_config import parse_config
from tests.conftest import TINY_TASKS, tiny_pipeline

TASK = TINY_TASKS[0]


def _run(tmp_path, backbone, arms: dict, arm: str, **lora_section):
    from osrm_pipeline.run import open_run

    arms = {"lora": {"init": "gaussian"}, **arms}
    cfg = tiny_pipeline(tmp_path / "runs", backbone, arms=arms, lora={"rank": 4, "alpha": 8, "blocks": "qv", **lora_section})
    path = tmp_path / f"{arm}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return open_run(path, {}, arm=arm)


def _build(run):
    from stages.finetune import build_model

    return build_model(run, TASK, run.load_task(TASK)[0])[0]


def _state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _peft_reference(run, init_lora_weights, after=None):
    """What finetune built before INITS existed: seed, classifier, get_peft_model, then the arm's own overwrite."""
    from peft import LoraConfig, get_peft_model

    from osrm_core.models import head_module_names, load_classifier
    from osrm_pipeline.run import seed_everything

    c = run.cfg.lora
    seed_everything(run.cfg.seed)
    model = load_classifier(run.spec, run.load_task(TASK)[0].num_labels)
    pcfg = LoraConfig(r=c.rank, lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=run.spec.target_suffixes(c.blocks),
                      use_rslora=c.rslora, init_lora_weights=init_lora_weights, modules_to_save=head_module_names(model), bias="none")
    model = get_peft_model(model, pcfg)
    if after is not None:
        after(model)
    return model


def _seeded_orthonormal(model, seed: int) -> dict[str, torch.Tensor]:
    """The orthonormal arm's rule, written out: module i in name order draws random_orthonormal(r, d_in, seed + i)."""
    return {n: random_orthonormal(*a.shape, seed + i) for i, (n, a) in enumerate(sorted(lora.a_matrices(model).items()))}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for n in a:
        assert torch.equal(a[n], b[n]), n


def test_registry_covers_every_init():
    assert set(lora.INITS) == set(typing.get_args(Init))


@pytest.mark.parametrize("init", ["gaussian", "orthonormal"])
def test_as_init_is_bit_identical_to_the_init_alone(tmp_path, tiny_backbone, init):
    run = _run(tmp_path, tiny_backbone, {"arm": {"init": init}}, "arm")
    after = (lambda m: lora.set_a0(m, _seeded_orthonormal(m, run.cfg.seed))) if init == "orthonormal" else None
    _assert_same(_state(_build(run)), _state(_peft_reference(run, "gaussian", after)))
    # and the next draw from torch's RNG is the same: nothing extra was consumed
    _build(run)
    x = torch.rand(3)
    _peft_reference(run, "gaussian", after)
    assert torch.equal(x, torch.rand(3))


def test_osrm_as_init_is_the_subspace_itself(tmp_path, tiny_backbone):
    run = _run(tmp_path, tiny_backbone, {"osrm": {"init": "osrm"}}, "osrm")
    model = _peft_reference(run, "gaussian")
    sub = {n: random_orthonormal(*a.shape, 7 + i).float() for i, (n, a) in enumerate(sorted(lora.a_matrices(model).items()))}
    ref = _state(_peft_reference(run, "gaussian", lambda m: lora.set_a0(m, sub)))
    got = _peft_reference(run, "gaussian")
    lora.initialise(got, run.cfg.lora.init, run.cfg.seed, sub)
    _assert_same(_state(got), ref)
    with pytest.raises(OsrmError, match="build-subspace"):
        lora.initialise(got, run.cfg.lora.init, run.cfg.seed, None)


def test_kaiming_is_peft_default_init(tmp_path, tiny_backbone):
    run = _run(tmp_path, tiny_backbone, {"k": {"init": "kaiming"}}, "k")
    got, ref = _state(_build(run)), _state(_peft_reference(run, True))
    _assert_same(got, ref)
    b = [t for n, t in got.items() if ".lora_B." in n]
    assert b and all(not t.any() for t in b)
    assert not torch.equal(next(t for n, t in got.items() if ".lora_A." in n),
                           next(t for n, t in _state(_peft_reference(run, "gaussian")).items() if ".lora_A." in n))


@pytest.mark.parametrize("init", ["gaussian", "kaiming", "orthonormal"])
def test_a_norm_number_sets_each_module_norm(tmp_path, tiny_backbone, init):
    run = _run(tmp_path, tiny_backbone, {"arm": {"init": init, "lora": {"a_norm": 3.5}}}, "arm")
    model = _build(run)
    norms = lora.a_norms(lora.a_matrices(model))
    assert len(norms) >= 2 and all(v == pytest.approx(3.5, rel=1e-6) for v in norms.values())
    plain = lora.a_matrices(_build(_run(tmp_path, tiny_backbone, {"arm": {"init": init}}, "arm")))
    for n, a in lora.a_matrices(model).items():  # only the scale changes: same direction
        torch.testing.assert_close(a, plain[n] * (3.5 / plain[n].double().norm().item()), rtol=1e-5, atol=1e-6)
    assert all(not l.lora_B["default"].weight.any() for l in lora.lora_layers(model).values())


def test_match_lora_gives_the_gaussian_expected_norm(tmp_path, tiny_backbone):
    run = _run(tmp_path, tiny_backbone, {"ortho_ref": {"init": "orthonormal", "lora": {"a_norm": {"match": "lora"}}}}, "ortho_ref")
    a0 = lora.a_matrices(_build(run))
    for a in a0.values():
        r, d_in = a.shape
        assert torch.linalg.matrix_norm(a.double()).item() == pytest.approx(math.sqrt(d_in / r), rel=1e-6)
    # the rows stay orthogonal (a scaled orthonormal A): A A^T = (d_in / r^2) I
    a = next(iter(a0.values())).double()
    r, d_in = a.shape
    torch.testing.assert_close(a @ a.T, torch.eye(r, dtype=torch.float64) * d_in / r**2, atol=1e-5, rtol=1e-5)


def test_expected_norms_match_peft_draws():
    """INITS' analytic norms vs PEFT's realised draws at the study's shape (d_in = 384, r = 8)."""
    from peft import LoraConfig, get_peft_model

    r, d_in = 8, 384
    for init, peft_arg in (("gaussian", "gaussian"), ("kaiming", True)):
        norms = []
        for seed in range(20):
            torch.manual_seed(seed)
            model = get_peft_model(torch.nn.Sequential(torch.nn.Linear(d_in, d_in)),
                                   LoraConfig(r=r, target_modules=["0"], init_lora_weights=peft_arg))
            norms += [float(t.detach().norm()) for n, t in model.named_parameters() if "lora_A" in n]
        rms = math.sqrt(sum(v * v for v in norms) / len(norms))
        assert rms == pytest.approx(lora.INITS[init].norm(r, d_in), rel=0.02), init
    assert lora.INITS["gaussian"].norm(r, d_in) == pytest.approx(6.93, abs=0.01)
    assert lora.INITS["kaiming"].norm(r, d_in) == pytest.approx(1.63, abs=0.01)
    assert lora.INITS["osrm"].norm(r, d_in) == lora.INITS["orthonormal"].norm(r, d_in) == pytest.approx(math.sqrt(8))


def test_match_resolves_through_arms_and_bad_names_are_one_line_errors():
    arms = {"lora": {"init": "gaussian"}, "num": {"init": "orthonormal", "lora": {"a_norm": 3}},
            "ref": {"init": "osrm", "lora": {"a_norm": {"match": "lora"}}},
            "chain": {"init": "kaiming", "lora": {"a_norm": {"match": "ref"}}},
            "to_num": {"init": "osrm", "lora": {"a_norm": {"match": "num"}}}}
    cfg = parse_config({"arms": arms})
    assert cfg.for_arm("lora").lora.a_norm == "as_init" and cfg.for_arm("num").lora.a_norm == 3.0
    assert cfg.for_arm("ref").lora.a_norm.init == "gaussian" == cfg.for_arm("chain").lora.a_norm.init
    assert cfg.for_arm("to_num").lora.a_norm == 3.0
    assert lora.target_norm(cfg.for_arm("ref").lora.a0_norm, 8, 384) == pytest.approx(math.sqrt(48))
    for bad, words in (({"match": "lorra"}, "match 'lorra' is not one of arms"), (-1, "not a positive number"),
                       ({"match": "x2"}, "closes a cycle")):
        with pytest.raises(OsrmError) as err:
            parse_config({"arms": {"lora": {"init": "gaussian"}, "x": {"init": "osrm", "lora": {"a_norm": bad}},
                                   "x2": {"init": "osrm", "lora": {"a_norm": {"match": "x"}}}}}, "study.yaml")
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith("study.yaml: arms.x") and "lora.a_norm: " in msg and words in msg, msg
        assert "Value error" not in msg
    with pytest.raises(OsrmError, match=r"^config: lora\.a_norm: match 'nope'"):
        parse_config({"lora": {"a_norm": {"match": "nope"}}})


def test_diagnose_initial_a_applies_the_same_scaling(tmp_path, tiny_backbone):
    from stages.diagnose import initial_a

    run = _run(tmp_path, tiny_backbone, {"o": {"init": "orthonormal", "lora": {"a_norm": {"match": "lora"}}}}, "o")
    a0 = lora.a_matrices(_build(run))
    rebuilt = initial_a(run, "o", {TASK: a0})[TASK]
    _assert_same(rebuilt, a0)


def test_individual_table_shows_a0_norm():
    e = {"average": 70.0, "average_sd": 1.0}
    numbers = {"base": {"average": 50.0}, "lora": {"individual": e, "a0_norm": 6.93}, "osrm": {"individual": e}}
    rows = individual_table(numbers, ["lora", "osrm"]).splitlines()
    assert rows[0].endswith("| ‖A₀‖_F |") and rows[3].endswith("| 6.93 |") and rows[4].endswith("| – |")
    assert all(r.count("|") == rows[0].count("|") for r in rows)


def test_study_config_has_the_scale_controls():
    from pathlib import Path

    from osrm_pipeline.pipeline_config import load_config

    cfg = load_config(Path(__file__).parents[2] / "configs/study.yaml")
    assert list(cfg.arms) == ["lora", "lora_kaiming", "osrm", "osrm_refnorm", "orthonormal", "contrast", "contrast_refnorm"]
    assert cfg.reference == "lora" and cfg.arms["lora"].init == "gaussian" and cfg.arms["lora_kaiming"].init == "kaiming"
    for arm in ("osrm_refnorm", "contrast_refnorm"):
        view = cfg.for_arm(arm)
        assert view.lora.init == "osrm" and view.lora.a_norm.init == "gaussian"
    assert cfg.for_arm("contrast_refnorm").osrm.objective == "contrast"
    assert all(cfg.for_arm(a).lora.a_norm == "as_init" for a in ("lora", "lora_kaiming", "osrm", "orthonormal", "contrast"))
