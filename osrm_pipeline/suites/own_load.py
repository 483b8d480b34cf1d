"""Own tasks to the column contract: text fields (strings) + ``label`` (int64 class / float32 score).

Class names are ``label_names`` when given, else the dataset's ClassLabel names, else the distinct
label values of all three splits sorted (numerically when every value is an integer): the same names
whatever the row caps, returned in the TaskSpec so the stages record them.
"""

from __future__ import annotations

import math
from pathlib import Path

import datasets

from osrm_core.errors import OsrmError
from osrm_core.tasks.spec import TaskSpec
from osrm_pipeline.suites.own import DatasetsTask, FilesTask, OwnSuite
from osrm_pipeline.suites.own_classes import check_case, check_seen_in_train
from osrm_pipeline.suites.own_read import RawSplit, dataset_splits, file_splits, local_files, resolve
from osrm_pipeline.suites.schema import features_for
from osrm_pipeline.suites.splits import SPLITS, halve, stable_rng, text_key

OwnTask = FilesTask | DatasetsTask


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def label_key(value: object, class_names: tuple[str, ...]) -> str:
    """A raw label as the class name it stands for (ClassLabel ids -> their names, 1.0 -> '1')."""
    if class_names and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(class_names):
        return class_names[value]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value.strip() if isinstance(value, str) else str(value)


def _sorted_names(keys: set[str]) -> tuple[str, ...]:
    """Stable class order: numeric when every name is an integer, else by string."""
    try:
        return tuple(sorted(keys, key=int))
    except ValueError:
        return tuple(sorted(keys))


def _check_columns(entry: OwnTask, raw: RawSplit) -> None:
    found = raw.column_names
    for field, column in entry.column_fields():
        if column not in found:
            raise OsrmError(f"{raw.where}: no column '{column}' (task '{entry.name}', `{field}`); columns found: {found}; fix `{field}` in the task")


def task_spec_for(entry: OwnTask, raws: dict[str, RawSplit], class_names: tuple[str, ...]) -> TaskSpec:
    """The TaskSpec of an own task, with its class names settled (see the module docstring)."""
    if entry.generate is not None:  # its label space is its choices, or free text: nothing to read
        choices = entry.generate.choices
        if entry.resolved_metric == "accuracy_f1" and len(choices) != 2:
            raise OsrmError(f"task '{entry.name}': metric accuracy_f1 needs 2 choices, found {len(choices)}; use accuracy or matthews")
        return TaskSpec(name=entry.name, text_fields=entry.input_columns, num_labels=len(choices), metric=entry.resolved_metric,
                        label_names=choices, description=entry.description, generation=entry.generate.generation())
    names: tuple[str, ...] = ()
    if not entry.is_regression:
        names = entry.label_names or class_names
        if not names:
            keys = {label_key(v, ()) for raw in raws.values() for v in raw.values(entry.label) if not _missing(v)}
            names = _sorted_names(keys)
            check_case(names, entry.name, entry.label)
        if entry.num_labels is not None and len(names) != entry.num_labels:
            raise OsrmError(f"task '{entry.name}': num_labels is {entry.num_labels} but column '{entry.label}' has {len(names)} "
                            f"distinct labels {list(names)[:20]}; fix num_labels or give label_names")
        if len(names) < 2:
            raise OsrmError(f"task '{entry.name}': column '{entry.label}' has a single label {list(names)}; a classifier needs >= 2 "
                            "classes (for regression set num_labels: 1)")
    metric = entry.resolved_metric
    if metric == "accuracy_f1" and len(names) != 2:
        raise OsrmError(f"task '{entry.name}': metric accuracy_f1 needs 2 classes, found {len(names)}; use accuracy or matthews")
    return TaskSpec(name=entry.name, text_fields=tuple(entry.text), num_labels=len(names) or 1, metric=metric,
                    label_names=names, description=entry.description)


def _encode_label(spec: TaskSpec, value: object, raw: RawSplit, row: int, column: str, index: dict[str, int], class_names) -> float | int:
    where = f"{raw.where}: row {raw.row_number(row)}, column '{column}'"
    if _missing(value):
        raise OsrmError(f"{where}: the label is empty/NaN; fill it or drop the row")
    if spec.generation is not None and not spec.label_names:  # free text: the target itself
        if not str(value).strip():
            raise OsrmError(f"{where}: the target is empty; fill it or drop the row")
        return str(value)
    if spec.is_regression:
        try:
            number = float(value) if not isinstance(value, bool) else math.nan  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise OsrmError(f"{where}: regression label {value!r} is not a finite number; fix the row (or drop num_labels: 1 for classes)")
        return number
    key = label_key(value, class_names)
    if key not in index:
        names = "generate.choices" if spec.generation is not None else "label_names"
        raise OsrmError(f"{where}: label {key!r} is not one of {names} {list(spec.label_names)[:20]}; fix the row or {names}")
    return index[key]


def _order(n: int, cap: int | None, shuffle: bool, seed: int, name: str, split: str) -> list[int]:
    """Rows kept: all or a seeded shuffle, then the first ``cap``."""
    order = list(range(n))
    if shuffle:
        stable_rng(name, "shuffle", split, seed).shuffle(order)
    return order if cap is None else order[:cap]


def _conform(spec: TaskSpec, entry: OwnTask, raw: RawSplit, order: list[int], class_names) -> datasets.Dataset:
    """One split as a Dataset with the task's features; one-line OsrmError at the first bad cell."""
    columns = {}
    for field in spec.text_fields:
        values = raw.values(field, order)
        for i, v in enumerate(values):
            if _missing(v):
                raise OsrmError(f"{raw.where}: row {raw.row_number(order[i])}, column '{field}' is empty/NaN; fill it or drop the row")
        columns[field] = [str(v) for v in values]
    index = {name: k for k, name in enumerate(spec.label_names)}
    labels = raw.values(entry.target_column, order)
    columns["label"] = [_encode_label(spec, v, raw, order[i], entry.target_column, index, class_names) for i, v in enumerate(labels)]
    return datasets.Dataset.from_dict(columns, features=features_for(spec))


def read_raw(suite: OwnSuite, entry: OwnTask, data_dir: str | None) -> tuple[dict[str, RawSplit], tuple[str, ...]]:
    """Raw splits (columns checked, none empty) and ClassLabel names of an own task."""
    base = suite.base(data_dir)
    raws, class_names = dataset_splits(entry, base) if isinstance(entry, DatasetsTask) else (file_splits(entry, base), ())
    for split in SPLITS:
        _check_columns(entry, raws[split])
        if len(raws[split]) == 0:
            raise OsrmError(f"{raws[split].where}: split '{split}' of task '{entry.name}' has no rows; add rows or point it at another file")
    return raws, class_names


def shared_held_out(suite: OwnSuite, entry: OwnTask, data_dir: str | None) -> bool:
    """Whether validation and test name the same rows (one file, one split value or one dataset split)."""
    if isinstance(entry, DatasetsTask):
        return entry.source_split("validation") == entry.source_split("test")
    if entry.path is not None:
        return entry.split_values.get("validation", "validation") == entry.split_values.get("test", "test")
    base = suite.base(data_dir)
    return resolve(base, entry.validation).resolve() == resolve(base, entry.test).resolve()


def _rows(ds: datasets.Dataset, fields: list[str]) -> list[dict]:
    columns = ds.select_columns([*fields, "label"]).to_dict()
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def _raw_keys(raw: RawSplit, fields: tuple[str, ...]) -> list[tuple[str, ...]]:
    """:func:`text_key` of every row of a raw split."""
    columns = [raw.values(f) for f in fields]
    return [text_key(dict(zip(fields, values)), fields) for values in zip(*columns)]


def _validation_order(spec: TaskSpec, entry: OwnTask, raws: dict[str, RawSplit], seed: int, cap: int | None) -> list[int]:
    """Validation rows kept: those whose texts (case/space-insensitive) are in no test row, then the cap.

    The test rows are yours and are reported as given; validation, which every choice is made on,
    loses what it shares with all of test (docs/own_tasks.md, "Validation and test").
    """
    in_test = set(_raw_keys(raws["test"], spec.text_fields))
    keys = _raw_keys(raws["validation"], spec.text_fields)
    order = [i for i in _order(len(keys), None, entry.shuffle, seed, entry.name, "validation") if keys[i] not in in_test]
    if not order:
        raise OsrmError(f"{raws['validation'].where}: every validation row of task '{entry.name}' has its text in test too; "
                        "give validation other rows, or name the same file/split for both to have it halved")
    return order if cap is None else order[:cap]


def load_own_task(
    suite: OwnSuite,
    entry: OwnTask,
    *,
    seed: int,
    data_dir: str | None,
    max_train: int | None,
    max_eval: int | None,
) -> tuple[TaskSpec, datasets.DatasetDict]:
    """Spec and train/validation/test data of an own task (caps keep the first rows, after any shuffle).

    Validation and test never share a text (docs/own_tasks.md, "Validation and test"): when both name
    the same rows, those rows are halved (:func:`osrm_pipeline.suites.splits.halve`, seeded by ``seed``,
    before the caps); otherwise validation rows whose texts are also in test are dropped.
    """
    raws, class_names = read_raw(suite, entry, data_dir)
    spec = task_spec_for(entry, raws, class_names)
    check_seen_in_train(spec, raws, entry.target_column, lambda v: None if _missing(v) else label_key(v, class_names))
    caps = {"train": max_train, "validation": max_eval, "test": max_eval}
    out = {}
    if shared_held_out(suite, entry, data_dir):
        raw = raws["validation"]
        pool = _conform(spec, entry, raw, list(range(len(raw))), class_names)
        halves = halve(_rows(pool, list(spec.text_fields)), spec.text_fields, seed, f"own:{entry.name}", spec.is_regression)
        for split in ("validation", "test"):
            if not halves[split]:
                raise OsrmError(f"{raw.where}: task '{entry.name}': validation and test share these rows, which are "
                                "too few to halve; give at least two distinct texts")
            picked = halves[split] if caps[split] is None else halves[split][: caps[split]]
            out[split] = pool.select(picked)
        order = _order(len(raws["train"]), caps["train"], entry.shuffle, seed, entry.name, "train")
        out["train"] = _conform(spec, entry, raws["train"], order, class_names)
        return spec, datasets.DatasetDict({split: out[split] for split in SPLITS})
    for split in SPLITS:
        if split == "validation":
            order = _validation_order(spec, entry, raws, seed, caps[split])
        else:
            order = _order(len(raws[split]), caps[split], entry.shuffle, seed, entry.name, split)
        out[split] = _conform(spec, entry, raws[split], order, class_names)
    return spec, datasets.DatasetDict(out)


def own_spec(suite: OwnSuite, entry: OwnTask, data_dir: str | None = None) -> TaskSpec:
    """The TaskSpec alone (reads the label column when the class names come from the data)."""
    if entry.is_regression or entry.label_names or entry.generate is not None:
        return task_spec_for(entry, {}, ())
    return task_spec_for(entry, *read_raw(suite, entry, data_dir))


def own_files(suite: OwnSuite, entry: OwnTask, data_dir: str | None) -> list[Path]:
    """Files that define an own task's data: its data files and the code that reads them."""
    here = Path(__file__).resolve().parent
    code = [here / f for f in ("own.py", "own_read.py", "own_load.py", "schema.py", "splits.py")]
    return code + local_files(entry, suite.base(data_dir))
