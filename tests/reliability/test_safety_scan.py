"""Never unpickle; never run checkpoint code unless the config says so (scans the source tree)."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("osrm_core", "osrm_pipeline", "stages", "scripts", "benchmarks", "tests")


@lru_cache(maxsize=1)
def _sources() -> tuple[Path, ...]:
    out = []
    for root in ROOTS:
        out += [p for p in (REPO / root).rglob("*.py") if not any(part.startswith(".venv") or part == "site-packages" for part in p.parts)]
    return tuple(sorted(out))


@lru_cache(maxsize=None)
def _calls(path: Path) -> tuple[ast.Call, ...]:
    return tuple(n for n in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(n, ast.Call))


def _name(call: ast.Call) -> str:
    f = call.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        return f"{f.value.id}.{f.attr}"
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_torch_load_only_with_weights_only_true():
    bad = []
    for path in _sources():
        for call in _calls(path):
            if _name(call) == "torch.load":
                v = _kw(call, "weights_only")
                if not (isinstance(v, ast.Constant) and v.value is True):
                    bad.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert bad == [], f"torch.load without weights_only=True: {bad}"


@pytest.mark.parametrize("forbidden", ["pickle.load", "pickle.loads", "dill.load", "joblib.load", "cloudpickle.load"])
def test_no_unpickling(forbidden):
    hits = [f"{p.relative_to(REPO)}:{c.lineno}" for p in _sources() for c in _calls(p) if _name(c) == forbidden]
    assert hits == []


def test_numpy_never_allows_pickle():
    hits = []
    for path in _sources():
        for call in _calls(path):
            v = _kw(call, "allow_pickle")
            if v is not None and not (isinstance(v, ast.Constant) and v.value is False):
                hits.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert hits == []


def test_trust_remote_code_only_from_the_backbone_spec():
    """Every trust_remote_code= passes the BackboneSpec field (default False), never a literal True."""
    bad = []
    for path in _sources():
        if path.parts[-2] == "reliability":
            continue
        for call in _calls(path):
            v = _kw(call, "trust_remote_code")
            if v is None:
                continue
            ok = (isinstance(v, ast.Constant) and v.value is False) or (isinstance(v, ast.Attribute) and v.attr == "trust_remote_code")
            if not ok:
                bad.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert bad == [], f"trust_remote_code not taken from the backbone spec: {bad}"


def test_trust_remote_code_defaults_off():
    from osrm_core.backbones import BackboneSpec
    from osrm_pipeline.backbone_registry import load_spec
    from osrm_pipeline.config_dirs import configs_dir

    assert BackboneSpec.model_fields["trust_remote_code"].default is False
    for yaml_path in sorted((configs_dir() / "backbones").glob("*.yaml")):
        assert load_spec(yaml_path.stem).trust_remote_code is False, yaml_path


def test_artifacts_are_written_as_safetensors_not_pickles():
    """torch.save appears only in the resumable checkpoint's optimiser state (read back with weights_only=True)."""
    hits = [f"{p.relative_to(REPO)}" for p in _sources() for c in _calls(p) if _name(c) == "torch.save"
            and p.parts[-2] != "reliability"]
    assert set(hits) <= {"stages/io/checkpoint.py"}, hits
