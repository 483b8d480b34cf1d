"""The column contract every task honours: its text fields (strings) + ``label``.

``label`` is int64 class index for classification and float32 for regression (``num_labels == 1``); a
generative task's is the index of its target among its choices (int64), or the target text (string).
"""

from __future__ import annotations

import datasets

from osrm_core.errors import OsrmError
from osrm_core.tasks.spec import TaskSpec
from osrm_pipeline.suites.splits import SPLITS, Row


def features_for(spec: TaskSpec) -> datasets.Features:
    """Arrow features of a task: one string column per text field, then ``label``."""
    free_text = spec.generation is not None and not spec.label_names
    label = datasets.Value("string" if free_text else "float32" if spec.is_regression else "int64")
    return datasets.Features({**{f: datasets.Value("string") for f in spec.text_fields}, "label": label})


def encode_label(spec: TaskSpec, label: object) -> float | int:
    """A builder's label (class name, float for regression, or a free-text target) as the stored value."""
    if spec.is_regression:
        return float(label)  # type: ignore[arg-type]
    if spec.generation is not None and not spec.label_names:
        if not str(label).strip():
            raise OsrmError(f"task '{spec.name}': a row's target is empty; a free-text target needs text (fix the builder)")
        return str(label)
    try:
        return spec.label_names.index(label)  # type: ignore[arg-type]
    except ValueError:
        raise OsrmError(
            f"task '{spec.name}': label {label!r} is not one of label_names {list(spec.label_names)}; "
            "fix label_names in the suite YAML"
        ) from None


def rows_to_dataset_dict(spec: TaskSpec, rows: dict[str, list[Row]]) -> datasets.DatasetDict:
    """Build the train/validation/test DatasetDict of a task from plain rows."""
    features = features_for(spec)
    produced = next((set(r) - {"label"} for split in SPLITS for r in rows[split][:1]), set())
    if produced and produced != set(spec.text_fields):
        raise OsrmError(
            f"task '{spec.name}': its builder produces text fields {sorted(produced)} but the suite YAML "
            f"lists text_fields {list(spec.text_fields)}; make them match"
        )
    out = {}
    for split in SPLITS:
        columns = {f: [r[f] for r in rows[split]] for f in spec.text_fields}
        columns["label"] = [encode_label(spec, r["label"]) for r in rows[split]]
        out[split] = datasets.Dataset.from_dict(columns, features=features, split=split)
    return datasets.DatasetDict(out)


def cap_rows(dd: datasets.DatasetDict, max_train: int | None, max_eval: int | None) -> datasets.DatasetDict:
    """Keep the first ``max_train`` train rows and the first ``max_eval`` validation/test rows."""
    caps = {"train": max_train, "validation": max_eval, "test": max_eval}
    out = {}
    for split, ds in dd.items():
        cap = caps.get(split)
        out[split] = ds.select(range(min(cap, len(ds)))) if cap is not None and cap < len(ds) else ds
    return datasets.DatasetDict(out)
