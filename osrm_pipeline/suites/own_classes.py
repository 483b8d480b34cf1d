"""Class labels of an own task as people write them: spellings that differ only by case, and classes that
validation or test hold but train never does. Both stop with one line naming the file, row, column and class."""

from __future__ import annotations

from osrm_core.errors import OsrmError
from osrm_core.tasks.spec import TaskSpec
from osrm_pipeline.suites.own_read import RawSplit


def check_case(names: tuple[str, ...], task: str, column: str) -> None:
    """Class names read from the data (no label_names) must not differ only by case: 'Pos' and 'pos' would
    silently become two classes."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise OsrmError(f"task '{task}': column '{column}' has labels {other!r} and {name!r}, which differ only by case "
                            "and would be two classes; write them the same way in the data, or list both in label_names "
                            "to keep them apart")


def check_seen_in_train(spec: TaskSpec, raws: dict[str, RawSplit], column: str, key) -> None:
    """Every class of validation and test must occur in train (all of its rows, before data.max_train), or the
    model is scored on a class it never saw. key(value) -> the class name a raw label stands for, None for an
    empty cell (left to the row checks)."""
    if spec.is_regression or not spec.label_names:
        return
    in_train = {key(v) for v in raws["train"].values(column)}
    for split in ("validation", "test"):
        raw = raws[split]
        for i, name in enumerate(map(key, raw.values(column))):
            if name is not None and name not in in_train:
                raise OsrmError(f"{raw.where}: row {raw.row_number(i)}, column '{column}' ({split}): class {name!r} never "
                                f"occurs in train ({raws['train'].where}), so the model cannot learn it; add train rows of "
                                "that class or drop these rows")
