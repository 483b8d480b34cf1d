"""Per-task epochs and learning rates from JSON files like the paper's (configs/hparams/)."""

from __future__ import annotations

import json
from pathlib import Path

from osrm_core.errors import OsrmError

_KEYS = {"epochs", "lr", "batch_size"}


def read_json(path: str | Path, missing: str):
    """The parsed JSON file; one-line OsrmError `missing` when it does not exist, or naming the line of a syntax error."""
    p = Path(path)
    if not p.is_file():
        raise OsrmError(missing)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise OsrmError(f"{p}: malformed JSON (line {err.lineno}) — fix the syntax") from None


def task_hparams(path: str | None, task: str) -> dict:
    """{epochs?, lr?, batch_size?} for `task` from a JSON {task: {...}} file ({} when absent)."""
    if not path:
        return {}
    p = Path(path)
    data = read_json(p, f"finetune.hparams_file: {p} does not exist — fix the path or set it to null")
    if not isinstance(data, dict):
        raise OsrmError(f"{p}: expected an object {{task: {{epochs, lr, batch_size}}}}, got {type(data).__name__} — fix the file")
    name = task if task in data else "default"
    entry = data.get(name, {})
    if not isinstance(entry, dict):
        raise OsrmError(f"{p}: entry '{name}' must be an object like {{\"epochs\": 3, \"lr\": 4e-4}} — fix the file")
    unknown = set(entry) - _KEYS
    if unknown:
        raise OsrmError(f"{p}: entry '{name}' has unknown keys {sorted(unknown)} — allowed: {sorted(_KEYS)}")
    for key, value in entry.items():
        _check_value(p, name, key, value)
    return entry


def _check_value(path: Path, task: str, key: str, value) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if key == "batch_size":
        ok = ok and isinstance(value, int)
    if not ok:
        kind = "a positive integer" if key == "batch_size" else "a positive number"
        raise OsrmError(f"{path}: {task}.{key} = {value!r} must be {kind} — fix that value")
