"""One registry per init (osrm_core.lora.INITS): no module outside it compares an init with a name (ast walk), and
what each stage does with an init is unchanged — diagnose's A_0 is the A_0 finetune starts from, for every init."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from osrm_core import lora
from osrm_core.errors import OsrmError
from osrm_core.subspace import random_orthonormal
from osrm_pipeline.pipeline_config import parse_config
from tests.conftest import TINY_TASKS, tiny_pipeline

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "osrm_core/lora.py"
TASK = TINY_TASKS[0]


def _init_expr(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "init") or (isinstance(node, ast.Name) and node.id == "init")


def _init_names(node: ast.AST) -> bool:
    """A literal init name, or a tuple / list / set holding one."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return any(isinstance(e, ast.Constant) and e.value in lora.INITS for e in items)


def init_comparisons(source: str) -> list[int]:
    """Line numbers of comparisons of an `init` (name or attribute) with a literal init name (==, !=, in, ...)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_init_expr(o) for o in operands) and any(_init_names(o) for o in operands):
                lines.append(node.lineno)
    return lines


def test_no_if_chain_on_an_init_name_outside_the_registry():
    files = [p for d in ("osrm_core", "osrm_pipeline", "stages", "osrm_slurm") for p in sorted((ROOT / d).rglob("*.py"))
             if p != REGISTRY]
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in files for n in init_comparisons(p.read_text())]
    assert not bad, f"ask osrm_core.lora.INITS (add a field to InitMethod) instead of comparing init names: {bad}"


def test_the_walk_sees_a_comparison():
    src = 'if run.cfg.lora.init == "osrm":\n    pass\nelif init in ("orthonormal", "x"):\n    pass\nok = spec.init != name\n'
    assert init_comparisons(src) == [1, 3]


# ---------------------------------------------------------------- behaviour through the registry

def _run(tmp_path, backbone, arm: dict):
    from osrm_pipeline.run import open_run

    cfg = tiny_pipeline(tmp_path / "runs", backbone, arms={"lora": {"init": "gaussian"}, "arm": arm},
                        lora={"rank": 4, "alpha": 8, "blocks": "qv"})
    path = tmp_path / "arm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return open_run(path, {}, arm="arm")


def _fake_subspace(monkeypatch, tensors: dict):
    """stages.finetune and stages.diagnose read the same subspace: `tensors` (no build-subspace needed)."""
    import stages.diagnose
    import stages.finetune

    fake = SimpleNamespace(open=lambda *a, **k: SimpleNamespace(tensors=lambda: dict(tensors), content_hash="x"))
    monkeypatch.setattr(stages.finetune, "Subspace", fake)
    monkeypatch.setattr(stages.diagnose, "Subspace", fake)


@pytest.mark.parametrize("a_norm", ["as_init", 2.5, {"match": "lora"}])
@pytest.mark.parametrize("init", sorted(i for i, m in lora.INITS.items() if m.start is None))
def test_diagnose_initial_a_is_finetunes_a0(tmp_path, tiny_backbone, monkeypatch, init, a_norm):
    """For every init that fine-tunes from its own A_0: diagnose rebuilds exactly finetune's A_0 (bit for bit), or
    says it cannot (None) exactly when the init has no a0 (PEFT's unsaved draw)."""
    from stages.diagnose import initial_a
    from stages.finetune import build_model

    run = _run(tmp_path, tiny_backbone, {"init": init, "lora": {"a_norm": a_norm}})
    spec = run.load_task(TASK)[0]
    shapes = lora.a_shapes(build_model(_run(tmp_path, tiny_backbone, {"init": "gaussian"}), TASK, spec)[0])
    _fake_subspace(monkeypatch, {n: random_orthonormal(*s, 11 + i).float() for i, (n, s) in enumerate(sorted(shapes.items()))})
    a0 = lora.a_matrices(build_model(run, TASK, spec)[0])
    rebuilt = initial_a(run, "arm", {TASK: a0})
    if lora.INITS[init].a0 is None:
        assert rebuilt is None
        return
    assert rebuilt[TASK].keys() == a0.keys()
    for n in a0:
        assert torch.equal(rebuilt[TASK][n], a0[n]), n


@pytest.mark.parametrize("init", sorted(i for i, m in lora.INITS.items() if m.start is not None))
def test_derived_arms_have_no_initial_a(tmp_path, tiny_backbone, init):
    from stages.diagnose import initial_a

    run = _run(tmp_path, tiny_backbone, {"init": init, "from": "lora", "lora": {"a_norm": "as_init"}})
    assert initial_a(run, "arm", {TASK: {}}) is None


def test_orthonormal_a0_is_the_seeded_rule():
    shapes = {"b.value": (2, 6), "a.query": (3, 5)}
    a0 = lora.orthonormal_a0(shapes, 40)
    assert torch.equal(a0["a.query"], random_orthonormal(3, 5, 40)) and torch.equal(a0["b.value"], random_orthonormal(2, 6, 41))


def test_subspace_a0_names_the_fix():
    with pytest.raises(OsrmError, match="build-subspace"):
        lora.subspace_a0({"m": (2, 4)}, 0, None)
    with pytest.raises(OsrmError, match="lora.rank=2"):
        lora.subspace_a0({"m": (2, 4)}, 0, {"m": torch.zeros(3, 4)})


def test_every_arm_with_subspaces_refuses_a_token_k_it_cannot_honour():
    """refit builds subspaces from the same sample as osrm (needs_subspace), so the token estimator refuses its k too."""
    arms = {"lora": {"init": "gaussian"}, "refit": {"init": "refit", "from": "lora", "lora": {"a_norm": "as_init"},
                                                     "osrm": {"k": 20}}}
    with pytest.raises(OsrmError, match="arms.refit.osrm.k=20 with estimator token"):
        parse_config({"osrm": {"k": 50, "estimator": "token"}, "arms": arms})


def test_report_regime_covers_every_arm_with_subspaces(monkeypatch):
    import stages.report as rr

    monkeypatch.setattr(rr, "arm_regime", lambda run, arm: {})
    cfg = parse_config({"arms": {"lora": {"init": "gaussian"}, "osrm": {"init": "osrm"}, "ortho": {"init": "orthonormal"},
                                 "refit": {"init": "refit", "from": "lora", "lora": {"a_norm": "as_init"}}}})
    text, numbers = rr.regime_section(SimpleNamespace(cfg=cfg))
    assert "`osrm`" in text and "`refit`" in text and "`lora`" not in text and "`ortho`" not in text and numbers == {}
