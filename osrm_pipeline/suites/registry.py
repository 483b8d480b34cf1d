"""Suites and tasks: listing, specs, loading and data fingerprints.

A suite is a YAML file under ``configs/suites/`` (named by its stem), a suite YAML anywhere (named by
its path), or an own suite written inline in pipeline.yaml (:class:`OwnSuite`). A top-level
``loader`` key picks how a built-in suite's tasks are materialised (:data:`LOADERS`): ``packaged``
builds them from text in installed PyPI packages (``default_suite``), ``glue`` reads GLUE from the
hub or a local ``data_dir`` (``glue``). Own suites give a loader per task (``own_load``).
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
from osrm_core.tasks.spec import TaskSpec
from osrm_pipeline.suites import default_suite, glue
from osrm_pipeline.suites.files import SuiteConfig, read_suite, read_suite_file, suite_files, validate_suite
from osrm_pipeline.suites.own import OwnSuite
from osrm_pipeline.suites.own_load import load_own_task, own_files, own_spec

#: a suite name (configs/suites/<name>.yaml), a suite YAML path, an inline mapping, or a parsed suite
SuiteRef = str | Path | dict | SuiteConfig | OwnSuite


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


def resolve_suite(suite: SuiteRef, base_dir: str | Path | None = None) -> SuiteConfig | OwnSuite:
    """The parsed suite behind ``suite``.

    A string ending in .yaml/.yml or holding a '/' is a suite file path (relative to ``base_dir``,
    else the working directory); other strings name ``configs/suites/<name>.yaml``. An inline own
    suite (mapping or OwnSuite without a folder yet) gets ``base_dir`` as the folder its relative
    paths resolve against; pass the pipeline.yaml folder there.
    """
    if isinstance(suite, (str, Path)):
        text = str(suite)
        if not text.endswith((".yaml", ".yml")) and "/" not in text:
            return read_suite(text, project=base_dir)
        path = Path(text).expanduser()
        return read_suite_file(path if path.is_absolute() or base_dir is None else Path(base_dir) / path)
    if isinstance(suite, dict):
        suite = validate_suite(suite, "inline suite")
    if isinstance(suite, OwnSuite) and not suite.has_base:
        return suite.at(base_dir)
    return suite


def suite_name(suite: SuiteRef, base_dir: str | Path | None = None) -> str:
    """The name of a suite, for reports and manifests."""
    return resolve_suite(suite, base_dir).suite


def list_tasks(suite: SuiteRef) -> list[str]:
    """Task names of ``suite``, in config order."""
    return [t.name for t in resolve_suite(suite).tasks]


def task_spec(suite: SuiteRef, name: str, data_dir: str | None = None) -> TaskSpec:
    """The TaskSpec of task ``name`` in ``suite`` (OsrmError naming valid choices if unknown).

    An own task whose class names come from the data reads its label column here.
    """
    config = resolve_suite(suite)
    entry = config.task(name)
    return own_spec(config, entry, data_dir) if isinstance(config, OwnSuite) else entry.spec()


def _check_cap(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise OsrmError(f"{name} must be a positive integer or None, got {value!r}")


def load_task(
    suite: SuiteRef,
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
    config = resolve_suite(suite)
    entry = config.task(name)
    if isinstance(config, OwnSuite):
        return load_own_task(config, entry, seed=seed, data_dir=data_dir, max_train=max_train, max_eval=max_eval)
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


def task_fingerprint(suite: SuiteRef, name: str, seed: int = 42, data_dir: str | None = None) -> str:
    """sha256 hex identifying a task's data: its config, seed, source files and building code.

    Cheap after the first call (file digests are cached). Changes whenever the YAML entry, the
    seed, a source file or the building code changes; use it to invalidate cached artifacts.
    """
    config = resolve_suite(suite)
    entry = config.task(name)
    if isinstance(config, OwnSuite):
        header = {"suite": config.suite, "loader": "own", "task": entry.model_dump(mode="json"), "seed": seed}
        return _digest(header, own_files(config, entry, data_dir))
    header = {
        "suite": config.suite,
        "loader": config.loader,
        "hub_dataset": config.hub_dataset,
        "caps": config.caps,
        "sizes": config.sizes_for(entry) if config.loader == "packaged" else None,
        "task": entry.model_dump(mode="json"),
        "seed": seed,
    }
    return _digest(header, LOADERS[config.loader].files(config, entry, data_dir))


def _digest(header: dict, files: list[Path]) -> str:
    """sha256 over the JSON header and each file's last two path parts and content digest."""
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for path in files:
        stat = path.stat()
        label = "/".join(path.parts[-2:]).encode()
        digest.update(label + b"\0" + _file_digest(str(path), stat.st_mtime_ns, stat.st_size).encode())
    return digest.hexdigest()
