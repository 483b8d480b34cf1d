"""Validation and test never share a row, by content or by source index, for every loader and suite.

Validation is what every choice is made on (merge parameters, the epoch, the arm), test is what is
reported (docs/evaluation.md, "Splits"); a row in both would make the reported numbers in-sample.
Content is compared with ``text_key`` (case- and space-insensitive texts), so copies of one text count
as the same row.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml

from osrm_pipeline.suites import default_suite, glue, list_tasks, load_task, resolve_suite
from osrm_pipeline.suites.splits import halve, text_key


def _keys(spec, ds) -> list[tuple[str, ...]]:
    fields = list(spec.text_fields)
    return [text_key(row, fields) for row in ds]


def _assert_disjoint(spec, dd) -> None:
    val, test = _keys(spec, dd["validation"]), _keys(spec, dd["test"])
    assert val and test
    shared = set(val) & set(test)
    assert not shared, f"{spec.name}: {len(shared)} texts in both validation and test, e.g. {sorted(shared)[:2]}"


# -- the packaged default suite (configs/suites/default.yaml), every task -----------------------

@pytest.mark.parametrize("name", list_tasks("default"))
def test_default_suite_validation_and_test_are_disjoint(name):
    spec, dd = load_task("default", name)
    _assert_disjoint(spec, dd)
    assert not set(_keys(spec, dd["train"])) & set(_keys(spec, dd["test"]))


@pytest.mark.parametrize("name", [t for t in list_tasks("default") if t not in ("headline_match", "plot_continuation")])
def test_default_suite_splits_take_distinct_pool_rows(name):
    """By index: single-sentence splits are slices of one de-duplicated pool, so no pool row is in two."""
    suite = resolve_suite("default")
    entry = suite.task(name)
    rows = default_suite._rows(entry.builder, json.dumps(entry.options, sort_keys=True),
                               tuple(sorted(suite.sizes_for(entry).items())), default_suite.SPLIT_SEED)
    ids = {split: {id(r) for r in rows[split]} for split in rows}
    assert not ids["validation"] & ids["test"] and not ids["validation"] & ids["train"]


def test_question_type_duplicate_lines_stay_out_of_two_splits():
    """TREC's file has many duplicate lines; they are de-duplicated before the split."""
    from osrm_pipeline.suites import sources

    raw = [q for _, q in sources.read_trec()]
    assert len({text_key({"s": q}, ["s"]) for q in raw}) < len(raw)  # the source does repeat itself
    spec, dd = load_task("default", "question_type")
    keys = [k for s in ("train", "validation", "test") for k in _keys(spec, dd[s])]
    assert len(keys) == len(set(keys))


# -- the GLUE suite on its local stand-in ------------------------------------------------------

@pytest.mark.parametrize("name", list_tasks("glue"))
def test_glue_validation_and_test_are_disjoint(name, glue_dir):
    spec, dd = load_task("glue", name, data_dir=str(glue_dir))
    _assert_disjoint(spec, dd)
    pool = glue.conform(spec, glue._load_local(glue_dir, resolve_suite("glue").task(name))["validation"], "standin")
    halves = glue.held_out_halves(spec, pool, 42)
    assert not set(halves["validation"]) & set(halves["test"])  # by index into GLUE's validation rows
    assert sorted(halves["validation"] + halves["test"]) == list(range(len(pool)))  # every row in one half
    assert len(dd["validation"]) + len(dd["test"]) == len(pool)


def test_halve_is_disjoint_by_index_and_content_with_many_duplicates():
    rows = [{"s": f"text {i % 7}", "label": i % 3} for i in range(60)]  # every text ~9 times
    halves = halve(rows, ["s"], seed=1, salt="t")
    assert not set(halves["validation"]) & set(halves["test"])
    assert sorted(halves["validation"] + halves["test"]) == list(range(60))
    texts = {h: {rows[i]["s"] for i in idx} for h, idx in halves.items()}
    assert not texts["validation"] & texts["test"]
    scores = [{"s": f"t{i}", "label": float(i)} for i in range(40)]
    halves = halve(scores, ["s"], seed=1, salt="t", regression=True)
    assert abs(len(halves["validation"]) - len(halves["test"])) <= 1
    for idx in halves.values():  # quantile-stratified: each half spans the whole score range
        assert min(scores[i]["label"] for i in idx) < 8 and max(scores[i]["label"] for i in idx) >= 32


# -- own tasks ---------------------------------------------------------------------------------

def _rows(split: str, n: int, start: int = 0) -> list[dict]:
    return [{"text": f"{split} row {i}", "label": ("a", "b")[i % 2]} for i in range(start, start + n)]


def _write_csv(path: Path, rows: list[dict], split_column: bool = False) -> None:
    header = ["text", "label"] + (["split"] if split_column else [])
    lines = [",".join(header)] + [",".join(str(r[c]) for c in header) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _load(tmp_path: Path, **task):
    entry = {"name": "t", "text": ["text"], **task}
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump({"tasks": [entry]}))
    return load_task(str(path), "t")


def test_own_csv_with_a_split_column(tmp_path):
    rows = [{**r, "split": s} for s, n in (("train", 8), ("validation", 6), ("test", 6)) for r in _rows(s, n)]
    rows += [{"text": "test row 0", "label": "a", "split": "validation"}]  # a test text repeated in validation
    _write_csv(tmp_path / "all.csv", rows, split_column=True)
    spec, dd = _load(tmp_path, loader="files", path="all.csv")
    _assert_disjoint(spec, dd)
    assert len(dd["test"]) == 6 and len(dd["validation"]) == 6  # the copy left validation, test is as given


def test_own_per_split_files(tmp_path):
    for split, n in (("train", 8), ("validation", 6), ("test", 6)):
        _write_csv(tmp_path / f"{split}.csv", _rows(split, n) + (_rows("test", 2) if split == "validation" else []))
    spec, dd = _load(tmp_path, loader="files", train="train.csv", validation="validation.csv", test="test.csv")
    _assert_disjoint(spec, dd)
    assert dd["test"]["text"][:] == [r["text"] for r in _rows("test", 6)]  # test rows untouched
    assert len(dd["validation"]) == 6


@pytest.mark.parametrize("layout", ["same_file", "same_split_value", "datasets_split"])
def test_own_single_source_for_validation_and_test_is_halved(tmp_path, layout):
    held = _rows("held", 10) + [{"text": "held row 3", "label": "b"}]  # a duplicate text
    if layout == "same_file":
        _write_csv(tmp_path / "train.csv", _rows("train", 8))
        _write_csv(tmp_path / "dev.csv", held)
        spec, dd = _load(tmp_path, loader="files", train="train.csv", validation="dev.csv", test="dev.csv")
    elif layout == "same_split_value":
        rows = [{**r, "split": "tr"} for r in _rows("train", 8)] + [{**r, "split": "dev"} for r in held]
        _write_csv(tmp_path / "all.csv", rows, split_column=True)
        spec, dd = _load(tmp_path, loader="files", path="all.csv",
                         split_values={"train": "tr", "validation": "dev", "test": "dev"})
    else:
        data = datasets.DatasetDict({"train": datasets.Dataset.from_list(_rows("train", 8)),
                                     "validation": datasets.Dataset.from_list(held)})
        data.save_to_disk(str(tmp_path / "saved"))
        spec, dd = _load(tmp_path, loader="datasets", dataset="saved", splits={"test": "validation"})
    _assert_disjoint(spec, dd)
    assert sorted(dd["validation"]["text"][:] + dd["test"]["text"][:]) == sorted(r["text"] for r in held)
    assert set(dd["validation"]["label"][:]) == set(dd["test"]["label"][:]) == {0, 1}  # stratified
