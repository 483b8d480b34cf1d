"""Suite/task lookup, one-line user errors, config override and data fingerprints."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from osrm_core.errors import OsrmError
from osrm_pipeline.suites import list_suites, list_tasks, load_task, task_fingerprint, task_spec
from osrm_pipeline.suites.files import configs_dir

EXPECTED_DEFAULT = [
    "movie_sentiment",
    "sms_spam",
    "sentiment_score",
    "question_type",
    "tweet_sentiment",
    "news_topic",
    "headline_match",
    "plot_continuation",
]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message.strip() == message
    return message


def test_suites_and_tasks_are_listed():
    assert {"default", "glue"} <= set(list_suites())
    assert list_tasks("default") == EXPECTED_DEFAULT
    assert list_tasks("glue") == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"]


def test_glue_specs_follow_the_paper():
    metrics = {n: task_spec("glue", n).metric for n in list_tasks("glue")}
    assert metrics == {
        "cola": "matthews", "sst2": "accuracy", "mrpc": "accuracy_f1", "stsb": "pearson_spearman",
        "qqp": "accuracy_f1", "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy",
    }
    assert task_spec("glue", "stsb").is_regression
    assert task_spec("glue", "mnli").num_labels == 3
    assert task_spec("glue", "qnli").text_fields == ("question", "sentence")
    assert task_spec("glue", "qqp").text_fields == ("question1", "question2")


def test_unknown_task_names_task_suite_and_valid_names():
    with pytest.raises(OsrmError) as exc:
        task_spec("default", "nope")
    message = _one_line(exc)
    assert "'nope'" in message and "'default'" in message
    assert all(name in message for name in EXPECTED_DEFAULT)
    with pytest.raises(OsrmError):
        load_task("glue", "wnli")


def test_unknown_suite_lists_valid_suites():
    with pytest.raises(OsrmError) as exc:
        list_tasks("superglue")
    message = _one_line(exc)
    assert "'superglue'" in message and "default" in message and "glue" in message
    with pytest.raises(OsrmError):
        load_task("superglue", "cola")


def test_bad_arguments_are_user_errors():
    with pytest.raises(OsrmError) as exc:
        load_task("default", "sms_spam", data_dir="/tmp")
    assert "data_dir" in _one_line(exc)
    with pytest.raises(OsrmError) as exc:
        load_task("default", "sms_spam", max_train=0)
    assert "max_train" in _one_line(exc)


def test_configs_dir_override(tmp_path, monkeypatch):
    (tmp_path / "suites").mkdir()
    shutil.copy(configs_dir() / "suites" / "default.yaml", tmp_path / "suites" / "mine.yaml")
    text = (tmp_path / "suites" / "mine.yaml").read_text().replace("suite: default", "suite: mine")
    (tmp_path / "suites" / "mine.yaml").write_text(text)
    monkeypatch.setenv("OSRM_CONFIGS_DIR", str(tmp_path))
    assert list_suites() == ["mine"]
    spec, dd = load_task("mine", "question_type", max_train=10, max_eval=5)
    assert spec.num_labels == 6 and len(dd["train"]) == 10


@pytest.mark.parametrize(
    ("edit", "task", "field"),
    [
        (("metric: matthews", "metric: f1"), "sms_spam", "metric"),
        (("num_labels: 6", "num_labels: 5"), "question_type", "label_names"),
        (("builder: news_topic", "builder: no_such_builder"), "news_topic", "builder"),
        (("sizes: {train: 1264, test: 500}", "sizes: {dev: 1}"), "news_topic", "sizes"),
        (("text_fields: [headline, sentence]", "text_fields: [sentence1, sentence2]"), "headline_match", "text_fields"),
    ],
)
def test_invalid_suite_file_is_a_one_line_error(tmp_path, monkeypatch, edit, task, field):
    (tmp_path / "suites").mkdir()
    text = (configs_dir() / "suites" / "default.yaml").read_text()
    assert edit[0] in text
    (tmp_path / "suites" / "default.yaml").write_text(text.replace(edit[0], edit[1]))
    monkeypatch.setenv("OSRM_CONFIGS_DIR", str(tmp_path))
    with pytest.raises(OsrmError) as exc:
        load_task("default", task, max_train=1, max_eval=1)
    message = _one_line(exc)
    assert field in message and task in message


def test_fingerprint_is_stable_and_tracks_seed_and_config():
    first = task_fingerprint("default", "sms_spam")
    assert len(first) == 64 and int(first, 16) >= 0
    assert task_fingerprint("default", "sms_spam", seed=42) == first
    assert task_fingerprint("default", "sms_spam", seed=1) != first
    assert task_fingerprint("default", "news_topic") != first


def test_fingerprint_tracks_local_glue_files(tmp_path, glue_dir):
    shutil.copytree(glue_dir / "rte", tmp_path / "rte")
    before = task_fingerprint("glue", "rte", data_dir=str(tmp_path))
    assert before != task_fingerprint("glue", "rte")
    path = Path(tmp_path / "rte" / "train.jsonl")
    path.write_text(path.read_text() + '{"sentence1": "A.", "sentence2": "B.", "label": 1, "idx": 9}\n')
    assert task_fingerprint("glue", "rte", data_dir=str(tmp_path)) != before


def test_importing_the_spec_stays_light():
    code = "import sys, osrm_core.tasks.spec, osrm_core.tasks; assert 'datasets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
