"""`osrm diagnose run/summary` on the tiny BERT, and what freezing a LoRA factor guarantees on disk."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from osrm_pipeline.layout import Layout
from osrm_pipeline.run import open_run
from stages.io.artifacts import Diagnostics, Features, Subspace, TaskAdapter
from tests.conftest import TINY_TASKS, tiny_pipeline

ARMS = {"lora": {"init": "gaussian"}, "ortho": {"init": "orthonormal"},
        "frozen": {"init": "osrm", "lora": {"freeze": "A"}},
        "mean_frozen": {"init": "osrm", "lora": {"freeze": "A"}, "osrm": {"estimator": "task-mean"}},
        "b_frozen": {"init": "osrm", "lora": {"freeze": "B"}}}
DIAGNOSED = ["lora", "ortho", "frozen"]  # fine-tuned on every task; the other arms on ONE task (seconds)
ONE = TINY_TASKS[0]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_backbone):
    """Features, every arm's subspaces and adapters (1 epoch), and `osrm diagnose run` of the arms in DIAGNOSED."""
    from tests.conftest import Cli

    cli, root = Cli(), tmp_path_factory.mktemp("diag")
    config = root / "pipeline.yaml"
    config.write_text(yaml.safe_dump(tiny_pipeline(root / "runs", tiny_backbone, arms=ARMS)))
    for t in TINY_TASKS:
        cli("extract-features", "-c", config, "--task", t)
    cli("build-subspace", "-c", config)
    for arm in ARMS:
        for t in TINY_TASKS if arm in DIAGNOSED else [ONE]:
            cli("finetune", "-c", config, "--task", t, "--arm", arm)
    for arm in DIAGNOSED:
        cli("diagnose", "run", "-c", config, "--arm", arm)
    return cli, config, Layout(root / "runs", 42)


def _run(config, arm=None):
    return open_run(config, {"workdir": None, "seed": None}, arm=arm)


def test_diagnose_writes_results_summary_heatmap_manifest(pipeline):
    _, config, layout = pipeline
    run = _run(config, "ortho")
    art = Diagnostics.open(run, "ortho")  # manifest parsed, every file's hash checked
    assert {p.name for p in layout.diagnostics("ortho").iterdir()} == {"diagnostics.json", "summary.json", "heatmap.png", "manifest.json"}
    res, summary = art.results(), art.summary()
    e = res["interference"]["matrix"]
    assert [e[t][t] for t in TINY_TASKS] == pytest.approx([1.0] * 3, abs=1e-12)
    assert summary["median_offdiag"] == pytest.approx(res["interference"]["median_offdiag"])
    assert all(isinstance(v, float) for v in summary.values())
    assert {"own_energy_init", "other_energy_init", "drift"} <= set(summary) and summary["drift"] > 0
    assert art.manifest.arm == "ortho" and art.manifest.tasks == TINY_TASKS and len(art.manifest.modules) == 4


def test_gaussian_has_no_init_and_orthonormal_init_is_recomputed(pipeline):
    _, config, _ = pipeline
    gauss = Diagnostics.open(_run(config, "lora"), "lora")
    assert gauss.results()["drift"] is None and "drift" not in gauss.summary()
    ortho = Diagnostics.open(_run(config, "ortho"), "ortho").results()
    # the recomputed A_0 is the one finetune drew: its recorded drift (training.json) matches ours
    trained = json.loads((_run(config).layout.adapter("ortho", TINY_TASKS[0]) / "training.json").read_text())["a_drift"]
    ours = ortho["drift"]["per_module"][TINY_TASKS[0]]
    assert ours == pytest.approx(trained, rel=1e-5)
    assert ortho["energy"]["init"]["own_mean"] == pytest.approx(1.0, abs=0.5)  # a random subspace: ~1


def test_freeze_a_keeps_the_subspace_bit_identical_and_loads_in_peft(pipeline, tiny_backbone):
    _, config, _ = pipeline
    run = _run(config, "frozen")
    summary = Diagnostics.open(run, "frozen").summary()
    assert summary["drift"] == 0.0 and summary["own_energy"] == summary["own_energy_init"]
    for t in TINY_TASKS:
        peft, a0 = TaskAdapter.open(run, "frozen", t).peft, Subspace.open(run, "frozen", t).tensors()
        for m in peft.modules:
            assert torch.equal(peft.factors(m)[0], a0[m])
    from peft import PeftModel

    from osrm_core.models import load_classifier

    peft = TaskAdapter.open(run, "frozen", TINY_TASKS[0]).peft
    model = PeftModel.from_pretrained(load_classifier(run.spec, 2), str(peft.folder))
    loaded = {n: p for n, p in model.named_parameters() if ".lora_A." in n}
    assert len(loaded) == len(peft.modules)
    for m in peft.modules:
        assert torch.equal(next(p for n, p in loaded.items() if f"{m}.lora_A." in n).detach(), peft.factors(m)[0])


def test_task_mean_frozen_a_annihilates_the_other_tasks_means(pipeline):
    """Estimator task-mean: A_j is orthogonal to every other task's mean row m_i; freezing A keeps A_j m_i = 0."""
    _, config, _ = pipeline
    run = _run(config, "mean_frozen")
    feats = Features.open_all(_run(config), TINY_TASKS)
    for j in [ONE]:
        peft = TaskAdapter.open(run, "mean_frozen", j).peft
        for mod in peft.modules:
            a = peft.factors(mod)[0].double()
            for i in TINY_TASKS:
                m_i = feats[i].cache.rows(mod).double().mean(0)
                ratio = float((a @ m_i).norm() / (a.norm() * m_i.norm()))
                assert ratio < 1e-5 if i != j else ratio > 1e-3, (i, j, mod, ratio)


def test_freeze_b_saves_both_factors_with_b_zero(pipeline):
    _, config, _ = pipeline
    run = _run(config, "b_frozen")
    for t in [ONE]:
        peft, a0 = TaskAdapter.open(run, "b_frozen", t).peft, Subspace.open(run, "b_frozen", t).tensors()
        for m in peft.modules:
            a, b = peft.factors(m)
            assert b.shape[1] == a.shape[0] and not b.any()
            assert torch.equal(a, a0[m])  # B = 0 gives A no gradient: the adapter never moves


def test_summary_pools_every_arm(pipeline, tmp_path):
    cli, config, layout = pipeline
    cfg = yaml.safe_load(config.read_text())
    cfg["arms"] = {a: ARMS[a] for a in DIAGNOSED}
    cfg["reference"] = "lora"
    small = config.parent / "diagnosed.yaml"
    small.write_text(yaml.safe_dump(cfg))
    cli("diagnose", "summary", "-c", small)
    out = layout.workdir / "diagnostics_summary"
    assert {p.name for p in out.iterdir()} == {"summary.json", "summary.md", "heatmaps.png", "per_layer.png", "manifest.json"}
    pooled = json.loads((out / "summary.json").read_text())
    assert list(pooled) == list(yaml.safe_load(small.read_text())["arms"])  # config order
    for arm in DIAGNOSED:  # one seed: the median is that seed's value
        assert pooled[arm] == pytest.approx(json.loads((layout.diagnostics(arm) / "summary.json").read_text()))
    assert "drift" not in pooled["lora"] and pooled["frozen"]["drift"] == 0.0
    md = (out / "summary.md").read_text()
    assert "docs/diagnostics.md" in md and all(md.count(f"| {a} |") == 2 for a in DIAGNOSED)  # held-out and in-sample tables
    assert md.index("Held-out Grams") < md.index("In-sample Grams") and "median E (held-out)" in md
    res = cli("diagnose", "summary", "-c", config, ok=False)  # an arm never diagnosed: one-line error naming the command
    assert res.exit_code != 0 and "osrm diagnose run --arm" in res.output


def test_ablate_variants_by_hand_and_against_evaluate(pipeline, tmp_path):
    """`osrm diagnose ablate`: own·λ at λ=1 and own + λ·others at λ=0 score as the individual adapter, and at λ=1
    own + λ·others is the merge; the three updates against a hand computation."""
    from osrm_core.ablation import ablation_updates, others_sum

    cli, config, _ = pipeline
    out = tmp_path / "ablation.json"
    res = cli("diagnose", "ablate", "-c", config, "--arm", "lora", "--lambda", 1.0, "--lambda", 0.0, "--lambda", 0.5, "--json", out)
    assert "| task | λ | individual |" in res.output
    rows = {(r["task"], r["lambda"]): r for r in json.loads(out.read_text())["rows"]}
    for t in TINY_TASKS:
        assert rows[t, 1.0]["own_scaled"] == pytest.approx(rows[t, 1.0]["individual"], abs=1e-9)
        assert rows[t, 1.0]["own_plus_others"] == pytest.approx(rows[t, 1.0]["merge"], abs=1e-9)
        assert rows[t, 0.0]["own_plus_others"] == pytest.approx(rows[t, 0.0]["individual"], abs=1e-9)
    deltas = {t: {m: torch.randn(2, 3) for m in ("q", "v")} for t in TINY_TASKS}
    u = ablation_updates(deltas[ONE], others_sum(deltas, ONE), 0.5)
    others = [t for t in TINY_TASKS if t != ONE]
    for m in ("q", "v"):
        torch.testing.assert_close(u["own_scaled"][m], 0.5 * deltas[ONE][m])
        torch.testing.assert_close(u["merge"][m], 0.5 * sum(deltas[t][m] for t in TINY_TASKS))
        torch.testing.assert_close(u["own_plus_others"][m], deltas[ONE][m] + 0.5 * sum(deltas[t][m] for t in others))


def test_heldout_grams_come_from_validation_rows_only_and_differ_from_in_sample(pipeline):
    """extract-features stores the Grams of validation rows (none of them built a subspace) beside the training
    sample's: recomputed here from exactly those rows with the same capture code, and unlike the in-sample ones."""
    from stages.extract_features import HELDOUT_SPLIT, _capture_grams, _load, heldout_indices

    _, config, _ = pipeline
    run = _run(config)
    feats = Features.open_all(run, TINY_TASKS)
    for t in TINY_TASKS:
        spec, data = run.load_task(t)
        held = heldout_indices(len(data[HELDOUT_SPLIT]), run.cfg.feature_k, run.cfg.seed)
        art = feats[t]
        assert HELDOUT_SPLIT == "validation" and art.manifest.heldout.split == "validation"
        assert art.manifest.heldout.rows == len(held) == art.heldout.n_rows
        model, tokenizer, names = _load(run, spec)
        grams, counts = _capture_grams(run, t, spec, data["validation"].select(held), model, tokenizer, names)
        for mod in art.manifest.modules:
            key = art.cache.aliases[mod]
            torch.testing.assert_close(art.heldout.gram(mod), grams[key], rtol=1e-9, atol=1e-9)
            assert art.heldout.count(mod) == counts[key]
            assert not torch.allclose(art.heldout.gram(mod), art.cache.gram(mod))  # not the in-sample Gram
        train = {tuple(r[f] for f in spec.text_fields) for r in data["train"]}
        assert not any(tuple(r[f] for f in spec.text_fields) in train for r in data["validation"].select(held))


def test_summary_headline_is_heldout_with_in_sample_beside(pipeline):
    from osrm_core import diagnose
    from stages.diagnose import read_grams

    _, config, layout = pipeline
    run = _run(config, "ortho")
    art = Diagnostics.open(run, "ortho")
    res, summary = art.results(), art.summary()
    assert res["grams"]["heldout"]["split"] == "validation" and res["grams"]["in_sample"]["split"] == "train"
    feats = Features.open_all(_run(config), TINY_TASKS)
    adapters = TaskAdapter.open_all(run, "ortho")
    modules = next(iter(adapters.values())).peft.modules
    factors = {t: {m: (*a.peft.factors(m), a.peft.scale) for m in modules} for t, a in adapters.items()}
    held = diagnose.interference(read_grams(feats, modules, heldout=True)[0], factors).summary()
    in_sample = diagnose.interference(read_grams(feats, modules)[0], factors).summary()
    assert summary["median_offdiag"] == pytest.approx(held["median_offdiag"], rel=1e-12)
    assert summary["in_sample_median_offdiag"] == pytest.approx(in_sample["median_offdiag"], rel=1e-12)
    assert summary["median_offdiag"] != summary["in_sample_median_offdiag"]
    for key in ("mean_offdiag", "max_offdiag", "own_energy", "other_energy", "own_energy_init", "other_energy_init"):
        assert key in summary and "in_sample_" + key in summary
    assert res["in_sample"]["energy"]["trained"]["own_mean"] == pytest.approx(summary["in_sample_own_energy"])
