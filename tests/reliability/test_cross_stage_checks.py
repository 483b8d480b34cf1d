"""Manifest checks that live in stages owned by other engineers: written here, xfail(strict) until wired.

Each xfail names the exact change; when it lands the test XPASSes, strict mode fails, and the marker goes.
"""

from __future__ import annotations

import pytest
from rel_lib import write_adapter

from tests.conftest import TINY_TASKS

T0 = TINY_TASKS[0]


def _one_line_error(res, *expect):
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert len(out.splitlines()) == 1 and "Traceback" not in out
    for s in expect:
        assert s in out, out


def test_finetune_rejects_subspace_from_another_estimator(work, cli):
    work.config(osrm={"estimator": "token"}, data={"max_train": 16, "max_eval": 8, "max_length": 16})
    res = cli("finetune", "-c", work.cfg, "--task", T0, "--arm", "osrm", ok=False)
    _one_line_error(res, "osrm.estimator", "build-subspace")


def test_merge_rejects_adapters_of_another_backbone_than_the_config(work, cli):
    for t in TINY_TASKS:
        write_adapter(work.tmp, "lora", t, work.cfg, weights="0" * 64)
    res = cli("merge", "-c", work.cfg, "--arm", "lora", "--method", "task_arithmetic", ok=False)
    _one_line_error(res, "backbone")
