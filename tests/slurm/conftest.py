"""Fixtures for the SLURM tests: a real single-node SLURM (scripts/slurm/start_local_slurm.sh) and
a toy DVC repository whose stages are plain shell commands."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "scripts" / "slurm" / "start_local_slurm.sh"
STOP = ROOT / "scripts" / "slurm" / "stop_local_slurm.sh"

TOY_DVC = """
stages:
  extract:
    foreach: [a, b]
    do:
      cmd: mkdir -p out && echo feat-${item} > out/feat_${item}.txt
      outs:
        - out/feat_${item}.txt
  merge:
    cmd: cat out/feat_a.txt out/feat_b.txt > out/merged.txt
    deps:
      - out/feat_a.txt
      - out/feat_b.txt
    outs:
      - out/merged.txt
"""


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: needs a real SLURM (started by scripts/slurm/start_local_slurm.sh)")


@pytest.fixture(scope="session")
def local_slurm():
    """Start (or reuse) the local SLURM; skip only when the Debian packages cannot be installed."""
    if os.geteuid() != 0:
        pytest.skip("local SLURM needs root to apt-get install slurm-wlm munge and start the daemons")
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
    took = time.monotonic() - t0
    if proc.returncode == 3:
        reason = f"slurm-wlm/munge cannot be installed here: {proc.stderr.strip()}"
        print(reason, file=sys.stderr)
        pytest.skip(reason)
    assert proc.returncode == 0, f"start_local_slurm.sh failed:\n{proc.stdout}\n{proc.stderr}"
    started = "already running" not in proc.stdout
    print(f"\nlocal SLURM {'started' if started else 'reused'} in {took:.1f}s\n{proc.stdout}", file=sys.stderr)
    yield proc.stdout
    if started:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=60)


def make_dvc_repo(path: Path, dvc_yaml: str = TOY_DVC) -> Path:
    """A DVC repository (no git) with `dvc_yaml` and a pipeline.yaml whose workdir is `runs`."""
    from dvc.repo import Repo

    path.mkdir(parents=True, exist_ok=True)
    Repo.init(str(path), no_scm=True).close()
    (path / "dvc.yaml").write_text(textwrap.dedent(dvc_yaml))
    (path / "pipeline.yaml").write_text("workdir: runs\n")
    return path


@pytest.fixture
def toy_repo(tmp_path):
    """The TOY_DVC repository: extract@a, extract@b -> merge."""
    return make_dvc_repo(tmp_path / "toy")


@pytest.fixture
def dvc_repo_factory(tmp_path):
    """`factory(name, dvc_yaml)` -> a DVC repository under tmp_path with that dvc.yaml."""
    return lambda name, dvc_yaml: make_dvc_repo(tmp_path / name, dvc_yaml)
