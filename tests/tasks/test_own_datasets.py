"""Own tasks through `datasets`: a save_to_disk folder, a local folder in the hub's parquet layout, a hub id offline."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
import yaml

from osrm_core.errors import OsrmError
from osrm_pipeline.suites import load_task, task_fingerprint

FEATURES = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
SPLITS = {
    "train": {"sentence": ["good", "bad", "nice", "awful"], "label": [1, 0, 1, 0]},
    "validation": {"sentence": ["fine", "poor"], "label": [1, 0]},
    "test": {"sentence": ["hidden a", "hidden b"], "label": [-1, -1]},  # GLUE-style hidden test labels
}


def _dataset_dict() -> datasets.DatasetDict:
    return datasets.DatasetDict({s: datasets.Dataset.from_dict(c, features=FEATURES) for s, c in SPLITS.items()})


def _suite(tmp_path: Path, **task) -> str:
    entry = {"name": "s", "loader": "datasets", "text": ["sentence"], "splits": {"test": "validation"}, **task}
    path = tmp_path / "hf.yaml"
    path.write_text(yaml.safe_dump({"tasks": [entry]}))
    return str(path)


def test_save_to_disk_folder_keeps_classlabel_names(tmp_path):
    _dataset_dict().save_to_disk(str(tmp_path / "saved"))
    spec, dd = load_task(_suite(tmp_path, dataset="saved"), "s")
    assert spec.label_names == ("neg", "pos") and spec.num_labels == 2
    assert dd["train"]["label"][:] == [1, 0, 1, 0]
    # test maps to the dataset's validation split, as validation does: the rows are halved, not shared
    assert sorted(dd["validation"]["sentence"][:] + dd["test"]["sentence"][:]) == ["fine", "poor"]
    assert len(dd["validation"]) == len(dd["test"]) == 1
    spec, dd = load_task(_suite(tmp_path, dataset="saved", label_names=["pos", "neg"]), "s")
    assert dd["train"]["label"][:] == [0, 1, 0, 1]  # reordered by name, not by id


def test_local_folder_in_hub_parquet_layout(tmp_path):
    repo = tmp_path / "hub_repo"
    for split, ds in _dataset_dict().items():
        (repo / "data").mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(repo / "data" / f"{split}-00000-of-00001.parquet"))
    spec, dd = load_task(_suite(tmp_path, dataset="hub_repo"), "s", max_train=3)
    assert spec.label_names == ("neg", "pos") and len(dd["train"]) == 3
    assert sorted(dd["validation"]["sentence"][:] + dd["test"]["sentence"][:]) == ["fine", "poor"]
    before = task_fingerprint(_suite(tmp_path, dataset="hub_repo"), "s")
    _dataset_dict()["train"].select([0, 1]).to_parquet(str(repo / "data" / "train-00000-of-00001.parquet"))
    assert task_fingerprint(_suite(tmp_path, dataset="hub_repo"), "s") != before


def test_hidden_test_labels_are_named_by_row(tmp_path):
    _dataset_dict().save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(OsrmError) as exc:
        load_task(_suite(tmp_path, dataset="saved", splits={}), "s")
    message = str(exc.value)
    assert "\n" not in message and "split 'test'" in message and "row 1" in message and "'-1'" in message


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"dataset": "saved", "splits": {"test": "dev"}}, ["no split 'dev'", "['train', 'validation', 'test']"]),
        ({"dataset": "saved", "label": "stars"}, ["no column 'stars'", "['sentence', 'label']"]),
        ({"dataset": "saved", "config": "x"}, ["save_to_disk", "remove `config`"]),
        ({"dataset": "./nowhere"}, ["nowhere not found"]),
        ({"dataset": "no-such-org/no-such-dataset"}, ["cannot load dataset 'no-such-org/no-such-dataset'", "save_to_disk"]),
    ],
)
def test_dataset_problems_are_one_line_errors(tmp_path, monkeypatch, task, expected):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    _dataset_dict().save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(OsrmError) as exc:
        load_task(_suite(tmp_path, **task), "s")
    message = str(exc.value)
    assert "\n" not in message and all(part in message for part in expected), message
