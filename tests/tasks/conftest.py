"""Fixtures for the task-suite tests: a private datasets cache and the GLUE stand-in folder."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

GLUE_STANDIN = Path(__file__).resolve().parents[1] / "fixtures" / "glue_standin"


@pytest.fixture(scope="session", autouse=True)
def _private_datasets_cache(tmp_path_factory):
    """Keep load_dataset's arrow cache out of the user's ~/.cache during these tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_datasets_cache"))
        datasets.disable_progress_bars()
        yield


@pytest.fixture()
def glue_dir() -> Path:
    """Folder of tiny GLUE-schema files, one sub-folder per task."""
    return GLUE_STANDIN
