"""Docstrings and comments name what exists, and code has a caller outside the tests: every `osrm <command>`
is a command of the CLI, every ``python -m <module>`` runs as a script, every artifact path has its seed<S>
level (osrm_pipeline/layout.py), every shared option is used by a stage, and every public function or class of
osrm_core/, osrm_pipeline/ and stages/ is used outside tests/."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import typer

from stages.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
CODE = sorted(p for d in ("osrm_core", "osrm_pipeline", "stages") for p in (REPO / d).rglob("*.py"))
USERS = CODE + sorted(p for d in ("benchmarks", "scripts") for p in (REPO / d).rglob("*.py"))
KINDS = "features|subspaces|adapters|checkpoints|merged|eval|selection|diagnostics"


def _rel(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


def test_named_commands_exist():
    bad = [(_rel(p), c) for p in USERS for c in re.findall(r"`osrm ([a-z][\w-]*)", p.read_text()) if c not in COMMANDS]
    assert bad == [], f"`osrm <command>` naming no command of stages/cli.py: {bad}"


def test_python_m_modules_run_as_scripts():
    bad = []
    for p in USERS:
        for module in re.findall(r"python -m ((?:osrm_core|osrm_pipeline|stages)[\w.]*)", p.read_text()):
            path = REPO / (module.replace(".", "/") + ".py")
            if not path.is_file() or '__name__ == "__main__"' not in path.read_text():
                bad.append((_rel(p), module))
    assert bad == [], f"`python -m` of a module that does not run as a script: {bad}"


def test_artifact_paths_name_their_seed():
    """<workdir>/<kind>/seed<S>/...: neither <kind>/<task> (no seed) nor <workdir>/seed<S>/<kind> (the seed first)."""
    missing, first = rf"(?<![/\w])(?:{KINDS})/<[\w.]+>", r"workdir>?/seed<\w+>/\w+"
    bad = [(_rel(p), m) for p in CODE for m in re.findall(f"{missing}|{first}", p.read_text())]
    assert bad == [], f"artifact paths without their seed<S> level where osrm_pipeline/layout.py has it: {bad}"


def test_shared_options_are_used():
    """Every typer.Option of stages/io/options.py is imported by some stage module."""
    from stages.io import options

    names = {n for n, v in vars(options).items() if isinstance(v, typer.models.OptionInfo)}
    imported = {a.name for p in (REPO / "stages").rglob("*.py") for node in ast.walk(ast.parse(p.read_text()))
                if isinstance(node, ast.ImportFrom) and node.module == "stages.io.options" for a in node.names}
    assert names - imported == set(), f"stages/io/options.py defines options no stage uses: {sorted(names - imported)}"


def _public_definitions(path: Path) -> list[str]:
    """Top-level public functions and classes, except decorated ones (Typer commands register themselves)."""
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
            and not n.name.startswith("_") and not n.decorator_list]


def test_every_public_definition_has_a_caller_outside_tests():
    words = Counter(w for p in USERS for w in re.findall(r"\w+", p.read_text()))
    unused = [f"{_rel(path)}:{name}" for path in CODE for name in _public_definitions(path) if words[name] <= 1]  # 1: itself
    assert unused == [], f"defined but used only by tests (or not at all): {unused}"
