"""Suites and tasks by name: listing, specs, loading and data fingerprints.

A suite is a YAML file under ``configs/suites/``; its ``loader`` key picks how its tasks are
materialised (:data:`LOADERS`): ``packaged`` builds them from text in installed PyPI packages
(``default_suite``), ``glue`` reads GLUE from the hub or a local ``data_dir`` (``glue``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import datasets

from osrm_core.errors import OsrmError
from osrm_core.tasks import default_suite, glue
from osrm_core.tasks.config import read_suite, suite_files
from osrm_core.tasks.spec import TaskSpec


class SuiteLoader(NamedTuple):
    """How a kind of suite loads a task, and which files define the task's data."""

    load: Callable[..., datasets.DatasetDict]
    files: Callable[..., list[Path]]


LOADERS: dict[str, SuiteLoader] = {
    "packaged": SuiteLoader(default_suite.load_packaged_task, default_suite.packaged_files),
    "glue": SuiteLoader(glue.load_glue_task, glue.glue_files),
}


def list_suites() -> list[str]:
    """Names of the suites found in ``configs/suites/``."""
    return list(suite_files())


def list_tasks(suite: str) -> list[str]:
    """Task names of ``suite``, in config order."""
    return [t.name for t in read_suite(suite).tasks]


def task_spec(suite: str, name: str) -> TaskSpec:
    """The TaskSpec of task ``name`` in ``suite`` (OsrmError naming valid choices if unknown)."""
    return read_suite(suite).task(name).spec()


def _check_cap(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise OsrmError(f"{name} must be a positive integer or None, got {value!r}")


def load_task(
    suite: str,
    name: str,
    *,
    seed: int = 42,
    data_dir: str | None = None,
    max_train: int | None = None,
    max_eval: int | None = None,
) -> tuple[TaskSpec, datasets.DatasetDict]:
    """Spec and data (splits train/validation/test; columns = text fields + label) of one task.

    ``max_train`` / ``max_eval`` keep the first rows of train / of validation and test.
    """
    _check_cap("max_train", max_train)
    _check_cap("max_eval", max_eval)
    config = read_suite(suite)
    entry = config.task(name)
    loader = LOADERS[config.loader]
    data = loader.load(config, entry, seed=seed, data_dir=data_dir, max_train=max_train, max_eval=max_eval)
    return entry.spec(), data


@lru_cache(maxsize=4096)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    """sha256 of a file's bytes (cached per path, modification time and size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def task_fingerprint(suite: str, name: str, seed: int = 42, data_dir: str | None = None) -> str:
    """sha256 hex identifying a task's data: its config, seed, source files and building code.

    Cheap after the first call (file digests are cached). Changes whenever the YAML entry, the
    seed, a source file or the building code changes; use it to invalidate cached artifacts.
    """
    config = read_suite(suite)
    entry = config.task(name)
    header = {
        "suite": suite,
        "loader": config.loader,
        "hub_dataset": config.hub_dataset,
        "caps": config.caps,
        "sizes": config.sizes_for(entry) if config.loader == "packaged" else None,
        "task": entry.model_dump(mode="json"),
        "seed": seed,
    }
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for path in LOADERS[config.loader].files(config, entry, data_dir):
        stat = path.stat()
        label = "/".join(path.parts[-2:]).encode()
        digest.update(label + b"\0" + _file_digest(str(path), stat.st_mtime_ns, stat.st_size).encode())
    return digest.hexdigest()
