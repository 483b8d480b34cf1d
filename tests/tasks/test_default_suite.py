"""The runnable default suite: every task loads with the column contract and clean splits."""

from __future__ import annotations

import pytest

from osrm_pipeline.suites import list_tasks, load_task, task_spec
from osrm_pipeline.suites.default_suite import _rows
from osrm_pipeline.suites.files import read_suite

TASKS = list_tasks("default")
PAIR_TASKS = [n for n in TASKS if len(task_spec("default", n).text_fields) == 2]
SPLITS = ("train", "validation", "test")


def _texts(spec, ds) -> set[str]:
    return {" ".join(t.casefold().split()) for f in spec.text_fields for t in ds[f][:]}


def test_suite_has_eight_glue_shaped_tasks():
    specs = [task_spec("default", n) for n in TASKS]
    assert len(specs) == 8
    binary = [s for s in specs if s.num_labels == 2]
    multi = [s for s in specs if s.num_labels >= 3]
    assert len(binary) >= 2 and len(multi) >= 2
    assert any(s.is_regression and s.metric == "pearson_spearman" for s in specs)
    assert any(s.num_labels == 2 and s.metric == "matthews" for s in specs)
    assert any(len(s.text_fields) == 2 for s in specs)
    assert {s.metric for s in specs} == {"accuracy", "accuracy_f1", "matthews", "pearson_spearman"}


@pytest.mark.parametrize("name", TASKS)
def test_task_loads_with_contract(name):
    spec, dd = load_task("default", name)
    assert spec == task_spec("default", name)
    assert list(dd) == list(SPLITS)
    sizes = read_suite("default").sizes_for(read_suite("default").task(name))
    for split in SPLITS:
        ds = dd[split]
        assert ds.column_names == [*spec.text_fields, "label"]
        assert all(ds.features[f].dtype == "string" for f in spec.text_fields)
        assert ds.features["label"].dtype == ("float32" if spec.is_regression else "int64")
        assert len(ds) == sizes[split], f"{name}/{split}: YAML sizes must record the real size"
        assert all(t and t.strip() for f in spec.text_fields for t in ds[f][:])
        assert max(len(t.split()) for f in spec.text_fields for t in ds[f][:]) <= 40
        labels = ds["label"][:]
        if spec.is_regression:
            assert -4.0 <= min(labels) < max(labels) <= 4.0
        else:
            assert set(labels) <= set(range(spec.num_labels))
            assert len(set(labels)) >= 2, f"{name}/{split} has one class"


@pytest.mark.parametrize("name", TASKS)
def test_no_text_shared_between_splits(name):
    spec, dd = load_task("default", name)
    texts = {s: _texts(spec, dd[s]) for s in SPLITS}
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]
    if len(spec.text_fields) == 1:
        assert all(len(texts[s]) == len(dd[s]) for s in SPLITS), "duplicate text inside a split"


@pytest.mark.parametrize("name", TASKS)
def test_splits_are_fixed_for_every_seed(name):
    """Test rows must pair across training seeds: the run's seed does not change the data."""
    _, first = load_task("default", name, seed=42)
    _rows.cache_clear()  # rebuild from scratch, not from the per-process cache
    _, again = load_task("default", name, seed=42)
    _, other = load_task("default", name, seed=7)
    for split in SPLITS:
        assert first[split].data.table.equals(again[split].data.table)
        assert first[split].to_dict() == other[split].to_dict(), f"{name}/{split} depends on the seed"


@pytest.mark.parametrize("name", TASKS)
def test_eval_splits_are_large(name):
    """Test >= 500 rows and validation >= 150 (the acceptance of the default suite)."""
    _, dd = load_task("default", name)
    assert len(dd["test"]) >= 500 and len(dd["validation"]) >= 150


@pytest.mark.parametrize("name", PAIR_TASKS)
def test_pair_tasks_are_balanced_and_use_each_text_once(name):
    spec, dd = load_task("default", name)
    for split in SPLITS:
        labels = dd[split]["label"][:]
        assert abs(sum(labels) / len(labels) - 0.5) <= 0.01, f"{name}/{split} is not 50/50"
        for field in spec.text_fields:
            texts = [" ".join(t.casefold().split()) for t in dd[split][field][:]]
            assert len(set(texts)) == len(texts), f"{name}/{split}: a {field} is used twice"


def test_max_train_and_max_eval_keep_first_rows():
    _, full = load_task("default", "question_type")
    _, small = load_task("default", "question_type", max_train=50, max_eval=20)
    assert [len(small[s]) for s in SPLITS] == [50, 20, 20]
    assert small["train"].to_dict() == full["train"].select(range(50)).to_dict()
    assert small["test"].to_dict() == full["test"].select(range(20)).to_dict()
