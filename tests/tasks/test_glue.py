"""The GLUE suite, offline: local GLUE-schema stand-in files, caps, and the unreachable-hub error."""

from __future__ import annotations

import json

import datasets
import huggingface_hub.constants
import pytest

from osrm_core.errors import OsrmError
from osrm_pipeline.suites import list_tasks, load_task

GLUE = list_tasks("glue")


@pytest.mark.parametrize("name", GLUE)
def test_glue_task_loads_from_local_files(name, glue_dir):
    spec, dd = load_task("glue", name, data_dir=str(glue_dir))
    assert list(dd) == ["train", "validation", "test"]
    for split, ds in dd.items():
        assert ds.column_names == [*spec.text_fields, "label"]
        assert ds.features["label"].dtype == ("float32" if spec.is_regression else "int64")
        assert len(ds) >= 3
        if not spec.is_regression:
            assert set(ds["label"][:]) <= set(range(spec.num_labels))
    # GLUE hides test labels: validation and test are two disjoint halves of GLUE's validation split
    assert not set(_keys(spec, dd["validation"])) & set(_keys(spec, dd["test"]))


def _keys(spec, ds) -> list[tuple]:
    return [tuple(row[f] for f in spec.text_fields) for row in ds]


def test_mnli_validation_is_validation_matched(glue_dir):
    spec, dd = load_task("glue", "mnli", data_dir=str(glue_dir))
    rows = [json.loads(line) for line in (glue_dir / "mnli" / "validation_matched.jsonl").read_text().splitlines()]
    halves = sorted(_keys(spec, dd["validation"]) + _keys(spec, dd["test"]))
    assert halves == sorted((r["premise"], r["hypothesis"]) for r in rows)


def test_halves_are_stratified_seeded_and_independent_of_caps(glue_dir):
    spec, dd = load_task("glue", "sst2", data_dir=str(glue_dir), seed=42)
    for split in ("validation", "test"):
        assert set(dd[split]["label"][:]) == {0, 1}  # both classes in both halves
    _, again = load_task("glue", "sst2", data_dir=str(glue_dir), seed=42)
    assert again["test"].to_dict() == dd["test"].to_dict()
    _, capped = load_task("glue", "sst2", data_dir=str(glue_dir), seed=42, max_eval=2)
    assert capped["test"].to_dict() == dd["test"].select(range(2)).to_dict()  # a cap keeps a half's first rows
    others = {tuple(sorted(_keys(spec, load_task("glue", "sst2", data_dir=str(glue_dir), seed=s)[1]["test"])))
              for s in range(6)}
    assert len(others) > 1  # the split seed picks the halves


def test_copies_of_a_text_stay_in_one_half(glue_dir):
    spec, dd = load_task("glue", "qqp", data_dir=str(glue_dir))
    keys = {s: _keys(spec, dd[s]) for s in ("validation", "test")}
    dup = ("How can I sleep better?", "What helps me sleep better?")  # twice in the stand-in
    assert keys["validation"].count(dup) + keys["test"].count(dup) == 2
    assert dup not in keys["validation"] or dup not in keys["test"]


def test_caps_keep_first_rows(glue_dir):
    _, dd = load_task("glue", "qqp", data_dir=str(glue_dir), max_train=2, max_eval=1)
    assert [len(dd[s]) for s in ("train", "validation", "test")] == [2, 1, 1]
    assert dd["train"]["question1"][:] == ["How do I learn Python fast?", "Why is the sky blue?"]


def test_hidden_labels_dropped_and_parquet_read(tmp_path):
    rows = [{"sentence": f"s{i}", "label": lab, "idx": i} for i, lab in enumerate([0, 1, -1, 1])]
    (tmp_path / "sst2").mkdir()
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "sst2" / "train.parquet"))
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "sst2" / "validation.parquet"))
    _, dd = load_task("glue", "sst2", data_dir=str(tmp_path))
    assert dd["train"]["label"][:] == [0, 1, 1]


def test_missing_file_or_column_is_one_line_error(tmp_path, glue_dir):
    with pytest.raises(OsrmError) as exc:
        load_task("glue", "rte", data_dir=str(tmp_path))
    assert "rte/train" in str(exc.value) and "\n" not in str(exc.value)
    (tmp_path / "mrpc").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "mrpc" / f"{split}.jsonl").write_text('{"sentence": "x", "label": 1}\n')
    with pytest.raises(OsrmError) as exc:
        load_task("glue", "mrpc", data_dir=str(tmp_path))
    assert "sentence1" in str(exc.value) and "\n" not in str(exc.value)


def test_unreachable_hub_says_so_and_suggests_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # datasets and huggingface_hub read these variables at import time: mirror them.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty_cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    with pytest.raises(OsrmError) as exc:
        load_task("glue", "cola")
    message = str(exc.value)
    assert "\n" not in message
    assert "hub" in message and "data_dir" in message and "cola" in message
