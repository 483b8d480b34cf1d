"""Which package may import which (README "Where things are"): osrm_core is the math and never imports the
pipeline's stages or the SLURM orchestration (osrm_slurm); osrm_slurm never imports stages. Read from the source
with ast, so a lazy import inside a function counts too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"osrm_core": ("stages", "osrm_slurm"), "osrm_slurm": ("stages",)}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_climbs_up(package):
    bad = [(str(p.relative_to(ROOT)), n) for p in sorted((ROOT / package).rglob("*.py")) for n in _imports(p)
           if n.split(".")[0] in FORBIDDEN[package]]
    assert not bad, f"{package} must not import {FORBIDDEN[package]}: {bad}"


def test_the_walk_sees_imports():
    """The check can fail: stages/submit.py does import osrm_slurm."""
    assert any(n.startswith("osrm_slurm") for n in _imports(ROOT / "stages/submit.py"))
