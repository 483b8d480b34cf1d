"""The DVC-stage -> SLURM-job DAG: arrays per foreach family, dependency order, aftercorr, targets."""

from __future__ import annotations

import pytest

from osrm_slurm import render as slurm
from osrm_core.errors import OsrmError


def node(name, *deps):
    return slurm.StageNode(name, (f"echo {name}",), ".", tuple(deps))


def pipeline() -> dict[str, slurm.StageNode]:
    """The OSRM shape: per-task extract, subspace needing every task's features, finetune per
    (init, task) where only osrm needs its subspace, merge per init over its finetunes."""
    tasks = ["a", "b", "c"]
    st = [node(f"extract@{t}") for t in tasks]
    st += [node(f"subspace@{t}", *[f"extract@{u}" for u in tasks]) for t in tasks]
    st += [node(f"finetune@gaussian-{t}") for t in tasks]
    st += [node(f"finetune@osrm-{t}", f"subspace@{t}") for t in tasks]
    st += [node(f"merge@{i}", *[f"finetune@{i}-{t}" for t in tasks]) for i in ("gaussian", "osrm")]
    st += [node("report", "merge@gaussian", "merge@osrm")]
    return {s.name: s for s in st}


def test_families_become_arrays_in_dependency_order():
    jobs = slurm.build_job_dag(pipeline())
    summary = [(j.name, j.stages, j.indices, j.after, j.corr) for j in jobs]
    assert summary[0] == ("extract", ("extract@a", "extract@b", "extract@c"), (0, 1, 2), (), False)
    assert summary[1] == ("subspace", ("subspace@a", "subspace@b", "subspace@c"), (0, 1, 2), (0,), False)
    by_stage = {s: j for j in jobs for s in j.stages}
    gauss, osrm = by_stage["finetune@gaussian-a"], by_stage["finetune@osrm-a"]
    assert gauss is not osrm, "finetune members with different upstream jobs are split"
    assert gauss.after == () and gauss.is_array
    assert osrm.after == (1,) and osrm.corr and osrm.indices == (0, 1, 2)
    merge = by_stage["merge@gaussian"]
    assert merge is not by_stage["merge@osrm"] and merge.after == (gauss.key,)
    assert jobs[-1].stages == ("report",) and not jobs[-1].is_array
    position = {j.key: i for i, j in enumerate(jobs)}
    assert all(position[a] < position[j.key] for j in jobs for a in j.after)


def test_dependency_strings():
    jobs = slurm.build_job_dag(pipeline())
    ids = {j.key: str(100 + j.key) for j in jobs}
    by_stage = {s: j for j in jobs for s in j.stages}
    assert by_stage["subspace@a"].dependency(ids) == "afterok:100"
    assert by_stage["finetune@osrm-b"].dependency(ids) == "aftercorr:101"
    assert by_stage["extract@a"].dependency(ids) is None
    report = jobs[-1].dependency(ids)
    assert report.startswith("afterok:") and len(report.split(":")) == 3


def test_aftercorr_aligns_indices_with_upstream():
    st = {s.name: s for s in [node("up@x"), node("up@y"), node("up@z"),
                              node("down@z2", "up@z"), node("down@x2", "up@x")]}
    up, down = slurm.build_job_dag(st)
    assert up.indices == (0, 1, 2)
    assert down.corr and dict(zip(down.stages, down.indices)) == {"down@x2": 0, "down@z2": 2}
    assert slurm.array_spec(down.indices) == "0,2"


def test_no_arrays_gives_one_job_per_stage():
    jobs = slurm.build_job_dag(pipeline(), arrays=False)
    assert len(jobs) == len(pipeline()) and not any(j.is_array for j in jobs)


def test_family_with_internal_dependency_is_split():
    st = {s.name: s for s in [node("x@1"), node("x@2", "x@1"), node("y@1", "x@2")]}
    jobs = slurm.build_job_dag(st)
    assert [j.stages for j in jobs] == [("x@1",), ("x@2",), ("y@1",)]
    assert [j.after for j in jobs] == [(), (0,), (1,)]


def test_select_targets_with_upstream_and_downstream():
    st = pipeline()
    chosen = slurm.select(st, ["merge@osrm"])
    assert set(chosen) == {"merge@osrm", *(f"{k}@{t}" for k in ("extract", "subspace") for t in "abc"),
                           *(f"finetune@osrm-{t}" for t in "abc")}
    assert set(slurm.select(st, ["subspace"])) == {f"{k}@{t}" for k in ("extract", "subspace") for t in "abc"}
    with pytest.raises(OsrmError, match="match no DVC stage"):
        slurm.select(st, ["nosuch"])
    todo = slurm.downstream(st, {"subspace@b"})
    assert todo == {"subspace@b", "finetune@osrm-b", "merge@osrm", "report"}
    plan = slurm.restrict(st, todo)
    assert plan["finetune@osrm-b"].deps == ("subspace@b",) and plan["subspace@b"].deps == ()
