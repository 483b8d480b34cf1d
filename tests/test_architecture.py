"""Which package may import which (docs/architecture.md): osrm_core is math on plain arguments and imports only
itself; osrm_pipeline (the config and the recipes that read it) imports osrm_core; osrm_slurm imports both, never
stages; a stage command imports stages.io and the packages below, never another stage. Read from the source with
ast, so a lazy import inside a function counts too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("osrm_core", "osrm_pipeline", "osrm_slurm", "stages")
MAY_IMPORT = {
    "osrm_core": {"osrm_core"},
    "osrm_pipeline": {"osrm_core", "osrm_pipeline"},
    "osrm_slurm": {"osrm_core", "osrm_pipeline", "osrm_slurm"},
    "stages": set(PACKAGES),
}
# the stage modules that are not commands: the command table itself (`osrm run` loads commands through it)
NOT_A_STAGE = {"stages.cli"}


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in the file (`from a import b` gives a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def _modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in sorted((ROOT / package).rglob("*.py"))}


def _stage_modules() -> set[str]:
    """The stage modules: stages/*.py outside stages.io, less NOT_A_STAGE."""
    return {m for m in _modules("stages") if m.count(".") == 1 and not m.startswith("stages.io")} - NOT_A_STAGE


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_climbs_up(package):
    bad = [(str(p.relative_to(ROOT)), n) for p in _modules(package).values() for n in _imports(p)
           if n.split(".")[0] in PACKAGES and n.split(".")[0] not in MAY_IMPORT[package]]
    assert not bad, f"{package} may import only {sorted(MAY_IMPORT[package])}: {bad}"


def test_a_stage_imports_no_other_stage():
    stages = _stage_modules()
    bad = [(m, n) for m, p in _modules("stages").items() if m not in NOT_A_STAGE
           for n in _imports(p) if n in stages and n != m]
    assert not bad, f"a stage module imports another stage (move what they share to stages.io or osrm_pipeline): {bad}"


def test_the_walk_sees_imports():
    """The checks can fail: stages/submit.py imports osrm_slurm, the stage modules are found, and a `from a import b`
    is seen as a.b."""
    assert any(n.startswith("osrm_slurm") for n in _imports(ROOT / "stages/submit.py"))
    assert {"stages.finetune", "stages.report", "stages.run_all"} <= _stage_modules()
    assert "osrm_pipeline.run" in _imports(ROOT / "stages/finetune.py")
    assert "osrm_pipeline.pipeline_config.load_config" in _imports(ROOT / "stages/run_all.py")
