"""Read the raw splits of an own task: local files (CSV/TSV/JSONL/Parquet) or a ``datasets`` dataset.

Both give one :class:`RawSplit` per split (train/validation/test): its column names, its row count,
and the values of chosen columns at chosen rows. Rows are named 1-based in messages: the N-th data
row of the file (CSV/TSV header not counted; in a file with a split column, the row of the whole file).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets.exceptions import DatasetNotFoundError

from osrm_core.errors import OsrmError
from osrm_pipeline.suites.own import DatasetsTask, FilesTask
from osrm_pipeline.suites.splits import SPLITS


@dataclass
class RawSplit:
    """One split as read: ``columns`` (all values, Python objects) or a ``datasets.Dataset``."""

    where: str  # file or dataset/split, for messages
    columns: dict[str, list] | None = None
    positions: list[int] | None = None  # file rows (0-based) of this split, when the file holds several
    dataset: datasets.Dataset | None = None

    @property
    def column_names(self) -> list[str]:
        return list(self.columns) if self.columns is not None else list(self.dataset.column_names)

    def __len__(self) -> int:
        if self.dataset is not None:
            return len(self.dataset)
        return len(self.positions) if self.positions is not None else len(next(iter(self.columns.values()), []))

    def row_number(self, i: int) -> int:
        """1-based row of the file (or dataset split) of this split's i-th row."""
        return (self.positions[i] if self.positions is not None else i) + 1

    def values(self, column: str, order: list[int] | None = None) -> list:
        """Values of ``column`` at this split's rows ``order`` (all rows in order when None)."""
        if self.dataset is not None:
            ds = self.dataset if order is None else self.dataset.select(order)
            return ds[column][:]
        rows = self.positions if self.positions is not None else range(len(self))
        picked = rows if order is None else [rows[i] for i in order]
        col = self.columns[column]
        return [col[i] for i in picked]


def _read_csv(path: Path, delimiter: str, quoting: int) -> dict[str, list]:
    """Columns of a CSV/TSV file as strings; empty cells become None (missing)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheet programs start UTF-8 with a BOM
        reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
        header = next(reader, None)
        if header is None:
            raise OsrmError(f"{path}: the file is empty; it needs a header row naming the columns")
        columns: dict[str, list] = {name: [] for name in header}
        for row_no, row in enumerate(reader, start=1):
            if len(row) != len(header):
                raise OsrmError(f"{path}: row {row_no} has {len(row)} fields but the header has {len(header)}; fix that row (TSV cells are not quoted)")
            for name, cell in zip(header, row):
                columns[name].append(cell if cell != "" else None)
    return columns


def _read_jsonl(path: Path) -> dict[str, list]:
    """Columns of a JSON-lines file (one object per non-blank line; absent keys become None)."""
    records = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OsrmError(f"{path}: line {line_no} is not valid JSON ({exc.msg}); write one JSON object per line") from None
        if not isinstance(record, dict):
            raise OsrmError(f"{path}: line {line_no} is a JSON {type(record).__name__}, not an object; write one object per line")
        records.append(record)
    names = list(dict.fromkeys(k for r in records for k in r))
    return {name: [r.get(name) for r in records] for name in names}


def read_table(path: Path, fmt: str) -> dict[str, list]:
    """All columns of a data file (format csv, tsv, jsonl or parquet)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pydict()
        except OSError as exc:
            raise OsrmError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())[:120]})") from None
    if fmt == "jsonl":
        return _read_jsonl(path)
    delimiter, quoting = (",", csv.QUOTE_MINIMAL) if fmt == "csv" else ("\t", csv.QUOTE_NONE)
    return _read_csv(path, delimiter, quoting)


def resolve(base: Path, path: str) -> Path:
    """``path`` as given (absolute, ~) or relative to ``base``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def _data_file(entry: FilesTask, base: Path, path: str) -> Path:
    file = resolve(base, path)
    if not file.is_file():
        raise OsrmError(f"task '{entry.name}': data file {file} not found (relative paths resolve against {base}); fix the path")
    return file


def file_splits(entry: FilesTask, base: Path) -> dict[str, RawSplit]:
    """The three splits of a ``files`` task."""
    if entry.path is None:
        out = {}
        for split, path in entry.split_files().items():
            file = _data_file(entry, base, path)
            out[split] = RawSplit(where=str(file), columns=read_table(file, entry.file_format(file)))
        return out
    file = _data_file(entry, base, entry.path)
    columns = read_table(file, entry.file_format(file))
    if entry.split_column not in columns:
        raise OsrmError(f"{file}: no split column '{entry.split_column}' (task '{entry.name}'); columns found: {list(columns)}; set split_column")
    tags = [None if v is None else str(v) for v in columns[entry.split_column]]
    out = {}
    for split in SPLITS:
        value = entry.split_values.get(split, split)
        positions = [i for i, tag in enumerate(tags) if tag == value]
        if not positions:
            found = sorted({t for t in tags if t is not None})
            raise OsrmError(f"{file}: no row has {entry.split_column} == '{value}' for split '{split}' (task '{entry.name}'); "
                            f"values found: {found}; fix split_values or the file")
        out[split] = RawSplit(where=str(file), columns=columns, positions=positions)
    return out


def _load_dataset(entry: DatasetsTask, base: Path) -> datasets.DatasetDict:
    """The whole dataset: a save_to_disk folder, a local folder in the hub's formats, or a hub id."""
    local = resolve(base, entry.dataset)
    if local.is_dir():
        if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
            if entry.config is not None:
                raise OsrmError(f"task '{entry.name}': {local} is a save_to_disk folder, which has no configs; remove `config`")
            loaded = datasets.load_from_disk(str(local))
            if isinstance(loaded, datasets.Dataset):
                raise OsrmError(f"task '{entry.name}': {local} holds one Dataset, not a DatasetDict; save a DatasetDict with train, validation and test splits")
            return loaded
        source, hint = str(local), f"check the files in {local}"
    elif entry.dataset.startswith(("/", ".", "~")):
        raise OsrmError(f"task '{entry.name}': dataset folder {local} not found (relative paths resolve against {base}); fix `dataset`")
    else:
        source, hint = entry.dataset, "without hub access, download its files (or save_to_disk) and set `dataset:` to that folder"
    try:
        return datasets.load_dataset(source, entry.config)
    except (DatasetNotFoundError, ConnectionError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        config = f", config {entry.config}" if entry.config else ""
        raise OsrmError(f"task '{entry.name}': cannot load dataset '{entry.dataset}'{config}: {reason}; {hint}") from None


def dataset_splits(entry: DatasetsTask, base: Path) -> tuple[dict[str, RawSplit], tuple[str, ...]]:
    """The three splits of a ``datasets`` task, and the label column's ClassLabel names (or ())."""
    dd = _load_dataset(entry, base)
    out = {}
    for split in SPLITS:
        name = entry.source_split(split)
        if name not in dd:
            raise OsrmError(f"task '{entry.name}': dataset '{entry.dataset}' has no split '{name}' for our '{split}' split; "
                            f"its splits: {list(dd)}; map it with `splits: {{{split}: <one of those>}}`")
        out[split] = RawSplit(where=f"dataset '{entry.dataset}' split '{name}'", dataset=dd[name])
    feature = out["train"].dataset.features.get(entry.target_column)
    names = tuple(feature.names) if isinstance(feature, datasets.ClassLabel) else ()
    return out, names


def local_files(entry: FilesTask | DatasetsTask, base: Path) -> list[Path]:
    """The local files a task's data comes from (none for a hub id), for fingerprints."""
    if isinstance(entry, FilesTask):
        paths = [resolve(base, p) for p in dict.fromkeys(entry.split_files().values())]
        return [p for p in paths if p.is_file()]
    folder = resolve(base, entry.dataset)
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
