"""Each artifact kind's `open` runs its one compatibility check: a manifest made for another backbone,
rank, layer set or estimator (or from older upstream artifacts, or by an older osrm) is a one-line error
naming the field and the command that rebuilds it."""

from __future__ import annotations

import json

import pytest
from rel_lib import write_adapter

from osrm_core.errors import OsrmError
from osrm_pipeline.layout import ModelRef
from osrm_pipeline.run import open_run
from stages.io.artifacts import Evaluation, Features, Merged, Subspace, TaskAdapter
from tests.conftest import TINY_TASKS

T0 = TINY_TASKS[0]


def _edit(folder, **changes) -> None:
    """Rewrite fields of an artifact's manifest (the manifest is not part of its own content hash)."""
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    for dotted, value in changes.items():
        node, *keys = [m, *dotted.split("__")]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    path.write_text(json.dumps(m))


def _one_line(err: pytest.ExceptionInfo, *expect: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg, msg
    for s in expect:
        assert s in msg, msg


@pytest.mark.parametrize("field,value,expect", [
    ("backbone__weights", "0" * 64, ["backbone", "osrm extract-features --task"]),
    ("blocks", "q", ["layer set differs"]),
    ("sampling__k", 99, ["osrm.k"]),
    ("sampling__include_padding", True, ["osrm.include_padding"]),
])
def test_features_from_another_config(work, field, value, expect):
    run = open_run(work.cfg)
    _edit(run.layout.features(T0), **{field: value})
    with pytest.raises(OsrmError) as err:
        Features.open(run, T0)
    _one_line(err, *expect)


@pytest.mark.parametrize("field,value,expect", [
    ("backbone__weights", "0" * 64, ["backbone"]),
    ("rank", 2, ["lora.rank"]),
    ("blocks", "v", ["layer set differs"]),
    ("estimator", "token", ["osrm.estimator"]),
    (f"upstream__{TINY_TASKS[1]}", "f" * 64, ["older features", TINY_TASKS[1]]),
])
def test_subspace_from_another_config(work, field, value, expect):
    run = open_run(work.cfg, arm="osrm")
    _edit(run.layout.subspace("osrm", T0), **{field: value})
    with pytest.raises(OsrmError) as err:
        Subspace.open(run, "osrm", T0)
    _one_line(err, *expect, f"osrm build-subspace --arm osrm --task {T0} --seed 42")


def test_subspace_from_another_objective(work):
    """The contrast arm must not start from the paper objective's subspace (and vice versa)."""
    run = open_run(work.cfg, arm="osrm")
    _edit(run.layout.subspace("osrm", T0), objective="contrast")
    with pytest.raises(OsrmError) as err:
        Subspace.open(run, "osrm", T0)
    _one_line(err, "osrm.objective")


def test_manifest_of_an_older_schema_names_the_rebuild_command(work):
    run = open_run(work.cfg, arm="osrm")
    _edit(run.layout.subspace("osrm", T0), schema_version=1)
    with pytest.raises(OsrmError) as err:
        Subspace.open(run, "osrm", T0)
    _one_line(err, "schema version 1", f"rebuild it with `osrm build-subspace --arm osrm --task {T0} --seed 42`")


def test_adapter_of_another_backbone_or_task(work):
    run = open_run(work.cfg)
    folder = run.layout.adapter("lora", T0)
    _edit(folder, task=TINY_TASKS[1])
    with pytest.raises(OsrmError) as err:
        TaskAdapter.open(run, "lora", T0)
    _one_line(err, "task")
    _edit(folder, task=T0, arm="osrm")
    with pytest.raises(OsrmError) as err:
        TaskAdapter.open(run, "lora", T0)
    _one_line(err, "arm")
    _edit(folder, arm="lora", backbone__weights="0" * 64)
    with pytest.raises(OsrmError) as err:
        TaskAdapter.open(run, "lora", T0)
    _one_line(err, "backbone")


def test_merge_of_other_tasks_or_older_adapters(work, cli):
    cli("merge", "-c", work.cfg, "--arm", "lora", "--method", "task_arithmetic")
    run = open_run(work.cfg)
    hashes = {t: TaskAdapter.open(run, "lora", t).content_hash for t in run.tasks}
    Merged.open(run, "lora", "task_arithmetic", hashes)  # fits
    write_adapter(work.tmp, "lora", T0, work.cfg, seed=5)  # retrained since the merge
    hashes[T0] = TaskAdapter.open(run, "lora", T0).content_hash
    with pytest.raises(OsrmError) as err:
        Merged.open(run, "lora", "task_arithmetic", hashes)
    _one_line(err, "older adapters", T0, "osrm merge --arm lora --method task_arithmetic --seed 42")
    _edit(run.layout.merged("lora", "task_arithmetic"), tasks=TINY_TASKS[:2])
    with pytest.raises(OsrmError) as err:
        Merged.open(run, "lora", "task_arithmetic", hashes)
    _one_line(err, "tasks")


def test_evaluation_of_another_split(work):
    from stages.io.atomic import atomic_dir

    run = open_run(work.cfg)
    with atomic_dir(run.layout.evaluation(ModelRef())) as tmp:  # as `osrm evaluate --model base` writes it
        (tmp / "metrics.json").write_text(json.dumps({"model": "base", "tasks": {}, "average": 0.0}))
        Evaluation.seal(tmp, {}, upstream={}, model="base", split=run.cfg.evaluate.split, tasks=run.tasks)
    Evaluation.open(run, ModelRef())  # fits
    _edit(run.layout.evaluation(ModelRef()), split="test")
    with pytest.raises(OsrmError) as err:
        Evaluation.open(run, ModelRef())
    _one_line(err, "evaluate.split", "osrm evaluate --model base --seed 42")
