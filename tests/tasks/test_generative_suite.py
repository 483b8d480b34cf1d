"""The packaged generative suite (configs/suites/generative.yaml): the default suite's rows written as prompts, its
classes as choice words, a free-text headline task split by article like headline_match; bad entries in one line."""

from __future__ import annotations

import pytest

from osrm_core.errors import OsrmError
from osrm_pipeline.suites import list_tasks, load_task
from osrm_pipeline.suites.files import validate_suite
from osrm_pipeline.suites.schema import encode_label

CHOICE_TASKS = ("question_type", "movie_sentiment", "sms_spam", "headline_match")


@pytest.mark.parametrize("task", CHOICE_TASKS)
def test_choice_tasks_are_the_default_rows_with_their_classes_as_words(task):
    spec, data = load_task("generative", task, max_train=64, max_eval=32)
    ref_spec, ref = load_task("default", task, max_train=64, max_eval=32)
    assert spec.kind == "generative" and spec.label_names == spec.generation.choices and spec.metric == ref_spec.metric
    assert spec.text_fields == ref_spec.text_fields  # the prompt names the builder's text fields
    for split in ("train", "validation", "test"):  # the same rows, class i written as choice i
        assert data[split].to_list() == ref[split].to_list()


def test_news_headline_is_free_text_split_by_article_like_headline_match():
    spec, data = load_task("generative", "news_headline")
    _, match = load_task("default", "headline_match")
    assert spec.kind == "generative" and spec.label_names == () and spec.metric == "rouge_l"
    assert all(isinstance(r["label"], str) and r["label"].strip() for r in data["train"])
    leads = {s: set(data[s]["sentence"]) for s in data}
    titles = {s: set(match[s]["headline"]) for s in match}
    assert {s: len(data[s]) for s in data} == {"train": 1004, "validation": 300, "test": 500}
    for s in data:  # an article's lead and title are never in another split of headline_match
        assert not leads[s] & set().union(*(set(match[o]["sentence"]) for o in match if o != s))
        assert not set(data[s]["label"]) & set().union(*(titles[o] for o in titles if o != s)) - titles[s]
    assert len(set(data["test"]["label"]) & set(data["train"]["label"])) <= 2  # a few BBC titles repeat across stories


def test_the_suite_lists_its_five_tasks():
    assert list_tasks("generative") == [*CHOICE_TASKS, "news_headline"]


ENTRY = {"name": "t", "builder": "movie_sentiment", "metric": "accuracy", "label_names": ["rotten", "fresh"],
         "generate": {"prompt": "Review: {sentence}\nSentiment:", "target": "label", "choices": ["negative", "positive"]}}


@pytest.mark.parametrize("change, message", [
    ({"generate": {**ENTRY["generate"], "target": "polarity"}}, "set target: label"),
    ({"label_names": ["rotten"]}, "label_names (the builder's classes) has 1 names but generate.choices has 2"),
    ({"metric": "rouge_l"}, "metric rouge_l does not fit a generative task with choices"),
    ({"text_fields": ["sentence"]}, "remove text_fields and num_labels"),
    ({"generate": None}, "needs text_fields and num_labels"),
])
def test_bad_generative_entries_are_one_line(change, message):
    with pytest.raises(OsrmError) as exc:
        validate_suite({"suite": "s", "loader": "packaged", "tasks": [{**ENTRY, **change}]}, "s.yaml")
    assert message in str(exc.value) and "task 't'" in str(exc.value) and "\n" not in str(exc.value)


def test_an_empty_free_text_target_is_one_line():
    spec, _ = load_task("generative", "news_headline", max_train=1, max_eval=1)
    assert encode_label(spec, "A title") == "A title"
    with pytest.raises(OsrmError, match="task 'news_headline': a row's target is empty"):
        encode_label(spec, "  ")


def test_the_generative_study_config_loads():
    from pathlib import Path

    from osrm_pipeline.pipeline_config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs/generative.yaml")
    assert cfg.backbone == "smollm2" and cfg.suite == "generative" and set(cfg.arms) == {"lora", "osrm", "contrast", "orthonormal"}
    assert set(cfg.tasks) <= set(list_tasks("generative")) and cfg.finetune.hparams_file is None
