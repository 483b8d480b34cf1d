"""Own tasks from local files: formats, layouts, column mapping, label names, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from osrm_core.errors import OsrmError
from osrm_pipeline.suites import list_tasks, load_task, resolve_suite, task_fingerprint, task_spec

ROWS = {
    "train": [("a fine film", "good"), ("dull and long", "bad"), ("loved it", "good"), ("awful", "bad"), ("meh", "okay")],
    "validation": [("great fun", "good"), ("boring", "bad")],
    "test": [("superb", "good"), ("terrible", "bad"), ("fine", "okay")],
}


def _write(path: Path, fmt: str, records: list[dict]) -> Path:
    """Write records as csv, tsv, jsonl or parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(records[0])
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif fmt == "parquet":
        pq.write_table(pa.table({c: [r[c] for r in records] for c in cols}), path)
    else:
        sep = "," if fmt == "csv" else "\t"
        lines = [sep.join(cols)] + [sep.join("" if r[c] is None else str(r[c]) for c in cols) for r in records]
        path.write_text("\n".join(lines) + "\n")
    return path


def _records(split: str) -> list[dict]:
    return [{"review": t, "stars": label} for t, label in ROWS[split]]


def _suite(tmp_path: Path, **task) -> Path:
    """A suite file `mine.yaml` in tmp_path with one task `t` (defaults: text [review], label stars)."""
    entry = {"name": "t", "loader": "files", "text": ["review"], "label": "stars", **task}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"tasks": [entry]}))
    return path


def _per_split(tmp_path: Path, fmt: str, edit=None) -> dict:
    files = {}
    for split in ROWS:
        records = _records(split)
        if edit:
            edit(split, records)
        files[split] = str(_write(tmp_path / "data" / f"{split}.{fmt}", fmt, records).relative_to(tmp_path))
    return files


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_one_file_per_split_in_every_format(tmp_path, fmt):
    suite = _suite(tmp_path, **_per_split(tmp_path, fmt))
    spec, dd = load_task(str(suite), "t")
    assert spec.label_names == ("bad", "good", "okay") and spec.num_labels == 3 and spec.metric == "accuracy"
    assert spec.text_fields == ("review",) and list(dd) == ["train", "validation", "test"]
    assert dd["train"]["review"][:] == [t for t, _ in ROWS["train"]]
    assert dd["train"]["label"][:] == [spec.label_names.index(lab) for _, lab in ROWS["train"]]
    assert dd["test"].features["label"].dtype == "int64"
    assert list_tasks(str(suite)) == ["t"] and resolve_suite(str(suite)).suite == "mine"


def test_one_file_with_a_split_column_and_value_mapping(tmp_path):
    names = {"train": "tr", "validation": "dev", "test": "te"}
    records = [{**r, "part": names[s]} for s in ROWS for r in _records(s)]
    _write(tmp_path / "all.csv", "csv", records)
    suite = _suite(tmp_path, path="all.csv", split_column="part", split_values=names)
    spec, dd = load_task(str(suite), "t")
    assert [len(dd[s]) for s in ROWS] == [5, 2, 3] and "part" not in dd["train"].column_names
    assert dd["validation"]["review"][:] == ["great fun", "boring"]


def test_pairs_given_label_names_caps_and_shuffle(tmp_path):
    def pairs(split, records):
        for r in records:
            r["other"] = r["review"].upper()

    suite = _suite(tmp_path, text=["review", "other"], label_names=["okay", "good", "bad"], shuffle=True,
                   **_per_split(tmp_path, "jsonl", pairs))
    spec, dd = load_task(str(suite), "t", seed=3, max_train=4, max_eval=1)
    assert spec.text_fields == ("review", "other") and spec.label_names == ("okay", "good", "bad")
    assert len(dd["train"]) == 4 and len(dd["test"]) == 1
    kept = dd["train"]["review"][:]
    assert set(kept) <= {t for t, _ in ROWS["train"]} and all(dd["train"]["other"][i] == t.upper() for i, t in enumerate(kept))
    again = load_task(str(suite), "t", seed=3, max_train=4)[1]["train"]["review"][:]
    other_seed = [load_task(str(suite), "t", seed=s, max_train=5)[1]["train"]["review"][:] for s in range(6)]
    assert again == kept and len({tuple(o) for o in other_seed}) > 1


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_files_saved_with_a_utf8_bom_are_read(tmp_path, fmt):
    """Spreadsheet programs save 'CSV UTF-8' with a byte-order mark before the header."""
    files = _per_split(tmp_path, fmt)
    for name in files.values():
        path = tmp_path / name
        path.write_text(path.read_text(), encoding="utf-8-sig")
    spec, dd = load_task(str(_suite(tmp_path, **files)), "t")
    assert spec.label_names == ("bad", "good", "okay") and dd["train"]["review"][:] == [t for t, _ in ROWS["train"]]


def test_integer_labels_sort_numerically(tmp_path):
    def ints(split, records):
        for i, r in enumerate(records):
            r["stars"] = [2, 10, 1][i % 3]

    spec, dd = load_task(str(_suite(tmp_path, **_per_split(tmp_path, "csv", ints))), "t")
    assert spec.label_names == ("1", "2", "10")
    assert dd["train"]["label"][:] == [1, 2, 0, 1, 2]


def test_regression_with_float_labels(tmp_path):
    def scores(split, records):
        for i, r in enumerate(records):
            r["stars"] = 0.5 * i

    suite = _suite(tmp_path, num_labels=1, **_per_split(tmp_path, "parquet", scores))
    spec, dd = load_task(str(suite), "t")
    assert spec.is_regression and spec.metric == "pearson_spearman" and spec.label_names == ()
    assert dd["train"]["label"][:] == [0.0, 0.5, 1.0, 1.5, 2.0] and dd["train"].features["label"].dtype == "float32"


def test_spec_fingerprint_and_data_dir_override(tmp_path):
    suite = _suite(tmp_path, **_per_split(tmp_path, "csv"))
    assert task_spec(str(suite), "t").label_names == ("bad", "good", "okay")
    before = task_fingerprint(str(suite), "t")
    assert task_fingerprint(str(suite), "t", seed=1) != before
    other = tmp_path / "elsewhere"
    _per_split(other, "csv")
    (other / "data" / "train.csv").write_text("review,stars\nnew text,good\nold text,bad\nso so,okay\n")
    assert task_fingerprint(str(suite), "t", data_dir=str(other)) != before
    assert load_task(str(suite), "t", data_dir=str(other))[1]["train"]["review"][:] == ["new text", "old text", "so so"]


def _edit_row(split: str, column: str, value):
    def edit(s, records):
        if s == split:
            records[1][column] = value
    return edit


def _numbers_but(split: str, value):
    def edit(s, records):
        for i, r in enumerate(records):
            r["stars"] = value if (s, i) == (split, 1) else float(i)
    return edit


BAD_DATA = [
        ("csv", {"label": "rating"}, None, ["no column 'rating'", "columns found: ['review', 'stars']", "train.csv"]),
        ("csv", {"text": ["review", "title"]}, None, ["no column 'title'", "`text`"]),
        ("jsonl", {"label_names": ["bad", "good"]}, None, ["train.jsonl", "row 5", "'okay'", "label_names"]),
        ("jsonl", {"num_labels": 1}, _numbers_but("test", "n/a"), ["test.jsonl", "row 2", "'n/a'", "not a finite number"]),
        ("csv", {"num_labels": 1}, None, ["train.csv", "row 1", "'good'", "not a finite number"]),
        ("parquet", {}, _edit_row("validation", "review", None), ["validation.parquet", "row 2", "column 'review'", "empty/NaN"]),
        ("jsonl", {}, _edit_row("validation", "stars", float("nan")), ["validation.jsonl", "row 2", "column 'stars'", "NaN"]),
        ("csv", {}, _edit_row("train", "stars", None), ["train.csv", "row 2", "column 'stars'", "empty/NaN"]),
        ("jsonl", {}, _edit_row("test", "review", None), ["test.jsonl", "row 2", "column 'review'"]),
        ("csv", {"num_labels": 2}, None, ["num_labels is 2", "3 distinct labels"]),
        ("csv", {"metric": "accuracy_f1"}, None, ["accuracy_f1 needs 2 classes"]),
        ("csv", {}, _edit_row("test", "stars", "great"), ["test.csv", "row 2", "column 'stars'", "'great'", "never occurs in train"]),
        ("tsv", {}, _edit_row("train", "stars", "Good"), ["column 'stars'", "'Good' and 'good'", "differ only by case", "label_names"]),
]


@pytest.mark.parametrize(("fmt", "task", "edit", "expected"), BAD_DATA)
def test_bad_data_is_a_one_line_error(tmp_path, fmt, task, edit, expected):
    suite = _suite(tmp_path, **{**_per_split(tmp_path, fmt, edit), **task})
    with pytest.raises(OsrmError) as exc:
        load_task(str(suite), "t")
    message = _one_line(exc)
    assert all(part in message for part in expected), message


def _cli_error(tmp_path, tiny_backbone, cli, suite: Path) -> str:
    """`osrm extract-features` on `suite`'s task t: `error: <one line>`, exit 2, no artifact written."""
    from tests.conftest import tiny_pipeline

    cfg = tiny_pipeline(tmp_path / "runs", tiny_backbone, suite=str(suite), tasks=["t"])
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    res = cli("extract-features", "-c", tmp_path / "pipeline.yaml", "--task", "t", ok=False)
    out = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(out) == 1 and out[0].startswith("error:"), res.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("manifest.json"))
    return out[0]


@pytest.mark.parametrize(("fmt", "task", "edit", "expected"), BAD_DATA, ids=lambda v: str(v)[:20])
def test_bad_data_through_the_cli_exits_2_and_writes_nothing(tmp_path, tiny_backbone, cli, fmt, task, edit, expected):
    """The same cases through a stage."""
    line = _cli_error(tmp_path, tiny_backbone, cli, _suite(tmp_path, **{**_per_split(tmp_path, fmt, edit), **task}))
    assert all(part in line for part in expected), line


def test_empty_or_missing_split_and_duplicate_names_through_the_cli(tmp_path, tiny_backbone, cli):
    files = _per_split(tmp_path, "csv")
    (tmp_path / files["validation"]).write_text("review,stars\n")
    assert "split 'validation'" in _cli_error(tmp_path, tiny_backbone, cli, _suite(tmp_path, **files))
    files = _per_split(tmp_path, "csv")
    assert "no file for split(s) ['test']" in _cli_error(tmp_path, tiny_backbone, cli, _suite(tmp_path, train=files["train"],
                                                                                                validation=files["validation"]))
    entry = {"name": "t", "loader": "files", "text": ["review"], "label": "stars", **files}
    (tmp_path / "dup.yaml").write_text(yaml.safe_dump({"tasks": [entry, entry]}))
    assert "duplicate task names ['t']" in _cli_error(tmp_path, tiny_backbone, cli, tmp_path / "dup.yaml")


def test_empty_split_and_missing_split_value(tmp_path):
    files = _per_split(tmp_path, "csv")
    (tmp_path / files["validation"]).write_text("review,stars\n")
    with pytest.raises(OsrmError) as exc:
        load_task(str(_suite(tmp_path, **files)), "t")
    assert "split 'validation'" in _one_line(exc) and "no rows" in str(exc.value)
    records = [{**r, "split": s} for s in ("train", "test") for r in _records(s)]
    _write(tmp_path / "all.csv", "csv", records)
    with pytest.raises(OsrmError) as exc:
        load_task(str(_suite(tmp_path, path="all.csv")), "t")
    message = _one_line(exc)
    assert "all.csv" in message and "'validation'" in message and "['test', 'train']" in message


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"train": "a.csv", "validation": "b.csv"}, ["task 't'", "no file for split(s) ['test']"]),
        ({}, ["task 't'", "no data"]),
        ({"path": "a.csv", "test": "b.csv"}, ["either `path`"]),
        ({"path": "a.csv", "metric": "f1"}, ["field 'metric'"]),
        ({"path": "a.csv", "colums": {}}, ["field 'colums'", "xtra"]),
        ({"path": "a.csv", "num_labels": 1, "metric": "accuracy"}, ["pearson_spearman"]),
        ({"path": "a.csv", "label_names": ["x"]}, [">= 2 classes"]),
    ],
)
def test_invalid_task_declaration_is_a_one_line_error(tmp_path, task, expected):
    with pytest.raises(OsrmError) as exc:
        load_task(str(_suite(tmp_path, **task)), "t")
    message = _one_line(exc)
    assert "mine.yaml" in message and all(part in message for part in expected), message


def test_duplicate_names_missing_file_and_unsupported_extension(tmp_path):
    entry = {"name": "t", "loader": "files", "text": ["review"], "path": "a.csv"}
    (tmp_path / "dup.yaml").write_text(yaml.safe_dump({"tasks": [entry, entry]}))
    with pytest.raises(OsrmError) as exc:
        list_tasks(str(tmp_path / "dup.yaml"))
    assert "duplicate task names ['t']" in _one_line(exc)
    with pytest.raises(OsrmError) as exc:
        load_task(str(_suite(tmp_path, path="nowhere.csv")), "t")
    assert "nowhere.csv not found" in _one_line(exc) and str(tmp_path) in str(exc.value)
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(OsrmError) as exc:
        load_task(str(_suite(tmp_path, path="data.xlsx")), "t")
    message = _one_line(exc)
    assert "unsupported file extension '.xlsx'" in message and "format:" in message
    with pytest.raises(OsrmError) as exc:
        list_tasks(str(tmp_path / "absent.yaml"))
    assert "absent.yaml not found" in _one_line(exc)


def test_format_override_reads_other_extensions(tmp_path):
    records = [{**r, "split": s} for s in ROWS for r in _records(s)]
    _write(tmp_path / "all.txt", "tsv", records)
    spec, dd = load_task(str(_suite(tmp_path, path="all.txt", format="tsv")), "t")
    assert len(dd["train"]) == 5 and spec.num_labels == 3
