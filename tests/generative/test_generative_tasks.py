"""Generative own tasks: the `generate:` block, loading (choice ids / free text), scores of text, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from osrm_core.errors import OsrmError
from osrm_core.generative.text_scores import exact_match, normalise, token_f1
from osrm_core.metrics import compute
from osrm_core.stats import paired_bootstrap
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline.suites import load_task, resolve_suite
from tests.generative.tiny_lm import TASKS, write_data


def _suite(tmp_path, *tasks):
    write_data(tmp_path)
    return resolve_suite({"suite": "gen", "tasks": list(tasks)}, base_dir=tmp_path)


def test_choices_load_as_ids_and_free_text_as_strings(tmp_path):
    suite = _suite(tmp_path, *TASKS)
    spec, dd = load_task(suite, "sentiment")
    assert spec.kind == "generative" and spec.text_fields == ("review",) and spec.label_names == ("negative", "positive")
    assert spec.num_labels == 2 and spec.metric == "accuracy_f1" and dd["train"].features["label"].dtype == "int64"
    assert set(dd["train"]["label"]) == {0, 1}
    spec, dd = load_task(suite, "colour")
    assert spec.num_labels == 0 and not spec.is_regression and spec.metric == "token_f1"
    assert dd["train"].features["label"].dtype == "string" and dd["train"][0]["label"] in {"red", "blue", "green", "black", "white", "gold"}
    assert kind_of(spec).labels(spec, dd["test"]).tolist() == [1.0] * len(dd["test"])


def test_default_metrics(tmp_path):
    tasks = [{**TASKS[0], "metric": None}, {**TASKS[2], "metric": None}]
    suite = _suite(tmp_path, *({k: v for k, v in t.items() if k != "metric"} for t in tasks))
    assert load_task(suite, "sentiment")[0].metric == "accuracy" and load_task(suite, "colour")[0].metric == "exact_match"


@pytest.mark.parametrize("change, message", [
    ({"generate": {"prompt": "review : {nope}", "target": "polarity"}}, "no column 'nope' (task 'bad', `generate.prompt`)"),
    ({"generate": {"prompt": "{review}", "target": "polarity", "choices": ["positive", "neutral"]}},
     "label 'negative' is not one of generate.choices ['positive', 'neutral']"),
    ({"generate": {"prompt": "{review}", "target": "gap"}}, "the target is empty"),
])
def test_bad_rows_are_one_line(tmp_path, change, message):
    write_data(tmp_path)
    lines = (tmp_path / "data.jsonl").read_text().splitlines()
    lines[3] = lines[3].replace('"split"', '"gap": "  ", "split"')
    (tmp_path / "data.jsonl").write_text("\n".join(line if "gap" in line else line.replace('"split"', '"gap": "x", "split"')
                                                   for line in lines) + "\n")
    suite = resolve_suite({"tasks": [{"name": "bad", "loader": "files", "path": "data.jsonl", **change}]}, base_dir=tmp_path)
    with pytest.raises(OsrmError) as exc:
        load_task(suite, "bad")
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("task, message", [
    ({"generate": {"prompt": "no columns", "target": "t"}}, "names no column"),
    ({"generate": {"prompt": "{a} {}", "target": "t"}}, "is not a column name"),
    ({"generate": {"prompt": "{a}", "target": "a"}}, "the model would see the answer"),
    ({"generate": {"prompt": "{a}", "target": "t", "choices": ["x"]}}, "choices needs >= 2"),
    ({"text": ["a"], "generate": {"prompt": "{a}", "target": "t"}}, "belong to classification tasks"),
    ({"generate": {"prompt": "{a}", "target": "t"}, "metric": "accuracy"}, "does not fit a generative task without choices"),
    ({"generate": {"prompt": "{a}", "target": "t", "choices": ["x", "y"]}, "metric": "token_f1"}, "with choices"),
    ({"text": ["a"], "metric": "exact_match"}, "needs a `generate:` block"),
    ({}, "give one or two text columns"),
])
def test_bad_declarations_are_one_line(tmp_path, task, message):
    with pytest.raises(OsrmError) as exc:
        resolve_suite({"tasks": [{"name": "t1", "loader": "files", "path": "d.jsonl", **task}]}, base_dir=tmp_path)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_squad_normalisation_exact_match_and_token_f1():
    assert normalise("The  Cat, sat!") == "cat sat"
    assert exact_match("the Red.", "red") == 1.0 and exact_match("red cat", "red") == 0.0
    assert token_f1("red red cat", "red cat dog") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert token_f1("", "") == 1.0 and token_f1("a", "blue") == 0.0 and token_f1("blue", "green") == 0.0


def test_row_mean_metrics_and_their_bootstrap():
    scores, ones = np.array([1.0, 0.5, 0.0, 0.25]), np.ones(4)
    assert compute("token_f1", scores, ones) == {"token_f1": 43.75, "score": 43.75}
    runs = {"0": {"t": (scores, ones)}}
    other = {"0": {"t": (np.array([0.0, 0.5, 0.0, 0.25]), ones)}}
    boot = paired_bootstrap(runs, other, {"t": "token_f1"}, n_boot=200, seed=0)
    slow = paired_bootstrap(runs, other, {"t": lambda p, y: 100 * float(np.mean(p))}, n_boot=200, seed=0)
    assert boot.estimate == pytest.approx(25.0) and np.allclose(boot.replicates, slow.replicates)
