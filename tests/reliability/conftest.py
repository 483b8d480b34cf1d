"""Fixtures for the reliability tests: one tiny finished workdir built once per session, copied per test.

The base workdir holds features (3 tasks), subspaces (3 tasks) and synthetic gaussian adapters (3 tasks,
written through the same io layer as `osrm finetune`, so the battery does not pay for training).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rel_lib import Work, write_adapter

from tests.conftest import TINY_TASKS, Cli, tiny_pipeline


@pytest.fixture(scope="session", autouse=True)
def _quiet_datasets():
    import datasets

    datasets.disable_progress_bars()


@pytest.fixture(scope="session")
def rel_base(tmp_path_factory, tiny_backbone) -> Path:
    """A finished tiny workdir (features, subspaces, gaussian adapters) — treat as read-only."""
    root = tmp_path_factory.mktemp("rel-base")
    cfg = root / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump(tiny_pipeline(root / "runs", tiny_backbone)))
    cli = Cli()
    for t in TINY_TASKS:
        cli("extract-features", "-c", cfg, "--task", t)
    for t in TINY_TASKS:
        cli("build-subspace", "-c", cfg, "--task", t)
    for t in TINY_TASKS:
        write_adapter(root, "lora", t, cfg)
    return root


@pytest.fixture
def work(tmp_path, rel_base, tiny_backbone) -> Work:
    return Work(tmp_path, rel_base, tiny_backbone)
