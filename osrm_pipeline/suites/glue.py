"""The paper's GLUE suite (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE) through ``datasets``.

By default each task comes from the hub (``datasets.load_dataset("nyu-mll/glue", name)``). Offline,
pass ``data_dir``: a folder holding ``<task>/train.<ext>`` and ``<task>/validation.<ext>`` (MNLI may
name it ``validation_matched``) in GLUE's schema, with ``ext`` one of jsonl, json, csv, tsv, parquet;
they are read with ``load_dataset(<format>, data_files=...)``.

Splits (docs/evaluation.md, "Splits"): ``train`` = GLUE train (first ``caps.train`` rows, 105,000 by
default as in the paper). GLUE's test labels are hidden (-1), so GLUE's validation split (MNLI:
validation_matched; its first ``caps.validation`` rows, 15,000) is the labelled held-out pool, and it
is divided once into two disjoint halves by :func:`osrm_pipeline.suites.splits.halve`: ``validation`` (merge
parameters, epochs, every choice) and ``test`` (the reported scores). The halving is stratified (by
label; STS-B by label quantile bin), keeps copies of one text in one half, and is seeded by the
loader's ``seed`` (the stages pass ``data.split_seed``); ``max_eval`` then keeps the first rows of
each half, so a cap never moves a row from one half to the other. Reported GLUE numbers are therefore
on half of GLUE's validation rows, not on all of them as in the paper.
"""

from __future__ import annotations

from pathlib import Path

import datasets
from datasets.exceptions import DatasetNotFoundError

from osrm_core.errors import OsrmError
from osrm_core.tasks.spec import TaskSpec
from osrm_pipeline.suites.files import SuiteConfig, TaskEntry
from osrm_pipeline.suites.schema import features_for
from osrm_pipeline.suites.splits import halve

GLUE_HUB = "nyu-mll/glue"

#: file extension -> (datasets packaged builder, extra load_dataset kwargs)
FILE_FORMATS: dict[str, tuple[str, dict]] = {
    "jsonl": ("json", {}),
    "json": ("json", {}),
    "csv": ("csv", {}),
    "tsv": ("csv", {"delimiter": "\t", "quoting": 3}),  # csv.QUOTE_NONE, as GLUE's raw TSVs need
    "parquet": ("parquet", {}),
}


def _split_names(entry: TaskEntry, split: str) -> list[str]:
    """File stems / hub split names accepted for one of our splits (hub name first)."""
    hub = entry.hub_splits.get(split, split)
    return [hub] if hub == split else [hub, split]


def local_file(data_dir: str | Path, entry: TaskEntry, split: str) -> Path | None:
    """The local file of ``split`` for a task, or None if there is none."""
    folder = Path(data_dir) / entry.name
    for stem in _split_names(entry, split):
        for ext in FILE_FORMATS:
            path = folder / f"{stem}.{ext}"
            if path.is_file():
                return path
    return None


def _load_local(data_dir: str | Path, entry: TaskEntry) -> dict[str, datasets.Dataset]:
    """Train and validation of a task from GLUE-schema files under ``data_dir``."""
    out = {}
    for split in ("train", "validation"):
        path = local_file(data_dir, entry, split)
        if path is None:
            stems = " or ".join(f"{entry.name}/{s}.{{{','.join(FILE_FORMATS)}}}" for s in _split_names(entry, split))
            raise OsrmError(f"data_dir {data_dir}: no {split} file for GLUE task '{entry.name}'; expected {stems}")
        fmt, kwargs = FILE_FORMATS[path.suffix.lstrip(".")]
        out[split] = datasets.load_dataset(fmt, data_files=str(path), split="train", **kwargs)
    return out


def _load_hub(suite: SuiteConfig, entry: TaskEntry) -> dict[str, datasets.Dataset]:
    """Train and validation of a task from the hub; OsrmError (suggesting data_dir) when unreachable."""
    hub = suite.hub_dataset or GLUE_HUB
    config = entry.hub_config or entry.name
    try:
        dd = datasets.load_dataset(hub, config)
    except (ConnectionError, DatasetNotFoundError, FileNotFoundError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise OsrmError(
            f"cannot load GLUE task '{entry.name}' from the Hugging Face hub ({hub}, config {config}): {reason}; "
            f"without hub access pass data_dir=<folder> holding {entry.name}/train.jsonl and "
            f"{entry.name}/validation.jsonl in GLUE's schema"
        ) from None
    return {split: dd[entry.hub_splits.get(split, split)] for split in ("train", "validation")}


def _first(ds: datasets.Dataset, cap: int | None) -> datasets.Dataset:
    """The first ``cap`` rows (all rows when cap is None)."""
    return ds if cap is None or cap >= len(ds) else ds.select(range(cap))


def conform(spec: TaskSpec, ds: datasets.Dataset, where: str) -> datasets.Dataset:
    """Keep the task's text fields + label, drop hidden labels (-1), cast to the column contract."""
    missing = [c for c in (*spec.text_fields, "label") if c not in ds.column_names]
    if missing:
        raise OsrmError(
            f"{where}: GLUE task '{spec.name}' lacks column(s) {missing}; "
            f"expected {list(spec.text_fields) + ['label']}"
        )
    ds = ds.select_columns([*spec.text_fields, "label"])
    labels = ds["label"][:]
    if not spec.is_regression:
        if any(label is None or label < 0 for label in labels):
            ds = ds.filter(lambda ex: ex["label"] is not None and ex["label"] >= 0)
            labels = ds["label"][:]
        if labels and max(labels) >= spec.num_labels:
            raise OsrmError(f"{where}: label {max(labels)} out of range for {spec.num_labels} classes of '{spec.name}'")
    features = features_for(spec)
    return ds if ds.features == features else ds.cast(features)


def load_glue_task(
    suite: SuiteConfig,
    entry: TaskEntry,
    *,
    seed: int,
    data_dir: str | None,
    max_train: int | None,
    max_eval: int | None,
) -> datasets.DatasetDict:
    """A GLUE task as train/validation/test (validation and test: disjoint halves of GLUE's validation)."""
    raw = _load_local(data_dir, entry) if data_dir is not None else _load_hub(suite, entry)
    where = f"{data_dir}/{entry.name}" if data_dir is not None else f"{suite.hub_dataset or GLUE_HUB}/{entry.name}"
    spec = entry.spec()
    train_cap = max_train if max_train is not None else suite.caps.get("train")
    train = conform(spec, _first(raw["train"], train_cap), where)
    pool = conform(spec, _first(raw["validation"], suite.caps.get("validation")), where)
    halves = held_out_halves(spec, pool, seed)
    out = {"train": train}
    for split in ("validation", "test"):
        out[split] = _first(pool.select(halves[split]), max_eval)
    return datasets.DatasetDict(out)


def held_out_halves(spec: TaskSpec, pool: datasets.Dataset, seed: int) -> dict[str, list[int]]:
    """Row indices of ``pool`` (GLUE's validation rows) in the validation and the test half."""
    fields = list(spec.text_fields)
    columns = pool.select_columns([*fields, "label"]).to_dict()
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    return halve(rows, fields, seed, f"glue:{spec.name}", regression=spec.is_regression)


def glue_files(suite: SuiteConfig, entry: TaskEntry, data_dir: str | None) -> list[Path]:
    """Files that define a GLUE task's data: this loader, plus the local files when ``data_dir`` is set."""
    here = Path(__file__).resolve().parent
    files = [Path(__file__).resolve(), here / "schema.py", here / "splits.py"]
    if data_dir is not None:
        files += [p for split in ("train", "validation") if (p := local_file(data_dir, entry, split))]
    return files
