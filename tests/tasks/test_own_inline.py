"""Own suites inline in pipeline.yaml, or as a YAML path: relative paths resolve against the pipeline.yaml folder."""

from __future__ import annotations

import pytest
import yaml

from osrm_core.errors import OsrmError
from osrm_pipeline.pipeline_config import load_config
from osrm_pipeline.suites import list_tasks, load_task, resolve_suite, suite_name, task_fingerprint

TASK = {"name": "mine", "loader": "files", "path": "data/all.csv", "text": ["premise", "hypothesis"], "label": "gold",
        "metric": "accuracy_f1"}
CSV = "premise,hypothesis,gold,split\n" + "".join(
    f"p{s}{i},h{s}{i},{'yes' if i % 2 else 'no'},{s}\n" for s, n in (("train", 6), ("validation", 2), ("test", 2)) for i in range(n))


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "exp" / "data").mkdir(parents=True)
    (tmp_path / "exp" / "data" / "all.csv").write_text(CSV)
    return tmp_path / "exp"


def test_inline_suite_resolves_against_the_pipeline_folder(project, tmp_path, monkeypatch):
    config = project / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"suite": {"suite": "my_suite", "tasks": [TASK]}, "tasks": ["mine"]}))
    monkeypatch.chdir(tmp_path)  # not the config's folder
    cfg = load_config(config)
    suite = resolve_suite(cfg.suite, base_dir=config.parent)
    assert list_tasks(suite) == ["mine"] and suite_name(suite) == "my_suite"
    spec, dd = load_task(suite, "mine")
    assert spec.text_fields == ("premise", "hypothesis") and spec.label_names == ("no", "yes")
    assert [len(dd[s]) for s in ("train", "validation", "test")] == [6, 2, 2]
    assert len(task_fingerprint(suite, "mine")) == 64
    with pytest.raises(OsrmError) as exc:  # without the folder, relative paths resolve against the cwd
        load_task(cfg.suite, "mine")
    assert "data/all.csv not found" in str(exc.value) and str(tmp_path) in str(exc.value)


def test_stage_checks_accept_own_task_data(project):
    from osrm_pipeline.run import check_task_data

    spec, dd = load_task(resolve_suite({"tasks": [TASK]}, project), "mine")
    check_task_data(spec, dd, where="task 'mine'")


def test_suite_path_relative_to_the_pipeline_folder(project, tmp_path, monkeypatch):
    (project / "suites").mkdir()
    (project / "suites" / "nli.yaml").write_text(yaml.safe_dump({"tasks": [{**TASK, "path": "../data/all.csv"}]}))
    config = project / "pipeline.yaml"
    config.write_text("suite: suites/nli.yaml\n")
    monkeypatch.chdir(tmp_path)
    suite = resolve_suite(load_config(config).suite, base_dir=config.parent)
    assert suite.suite == "nli" and load_task(suite, "mine", max_train=2)[0].num_labels == 2


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        ({"tasks": [TASK, TASK]}, ["field 'suite.inline'", "duplicate task names ['mine']"]),
        ({"tasks": [{**TASK, "lable": "x"}]}, ["unknown key 'suite.inline.tasks.0.files.lable'"]),
        ({"tasks": [{**TASK, "loader": "csv"}]}, ["suite.inline.tasks.0", "'files', 'datasets'"]),
        ({"tasks": [{**TASK, "text": []}]}, ["suite.inline.tasks.0.files.text"]),
    ],
)
def test_bad_inline_suite_is_a_one_line_config_error(project, suite, expected):
    config = project / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"suite": suite}))
    with pytest.raises(OsrmError) as exc:
        load_config(config)
    message = str(exc.value)
    assert "\n" not in message and "pipeline.yaml" in message and all(p in message for p in expected), message
