"""Per-task epochs and learning rates from JSON files like the paper's (configs/hparams/)."""

from __future__ import annotations

import json
from pathlib import Path

from osrm_core.errors import OsrmError

_KEYS = {"epochs", "lr", "batch_size"}


def task_hparams(path: str | None, task: str) -> dict:
    """{epochs?, lr?, batch_size?} for `task` from a JSON {task: {...}} file ({} when absent)."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise OsrmError(f"finetune.hparams_file: {p} does not exist — fix the path or set it to null")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise OsrmError(f"{p}: malformed JSON (line {err.lineno}) — fix the syntax") from None
    entry = data.get(task, data.get("default", {}))
    unknown = set(entry) - _KEYS
    if unknown:
        raise OsrmError(f"{p}: task '{task}' has unknown keys {sorted(unknown)} — allowed: {sorted(_KEYS)}")
    return entry
