"""The report's "is every task learnt?" check (osrm_core.study.chance_score / task_check) by hand."""

from __future__ import annotations

import numpy as np
import pytest

from osrm_core.study import Rows, chance_score, task_check


def test_chance_is_the_best_constant_prediction_by_hand():
    assert chance_score(Rows("accuracy", np.array([0, 1, 1, 2, 1]))) == pytest.approx(60.0)  # always class 1: 3/5
    # 50/50 pair task: always "match" gets accuracy 50 and F1 2/3 (mean 58.33); always "mismatch" only 25
    assert chance_score(Rows("accuracy_f1", np.array([0, 1, 0, 1]))) == pytest.approx((50 + 200 / 3) / 2)
    assert chance_score(Rows("matthews", np.array([0, 0, 0, 1]))) == 0.0  # MCC of a constant is 0
    assert chance_score(Rows("pearson_spearman", np.array([0.1, -2.0, 3.0]))) == 0.0


def test_task_check_flags_a_task_below_the_margin_or_chance():
    rows = {"a": Rows("accuracy", np.array([0, 1, 0, 1])), "b": Rows("accuracy", np.array([0, 1])),
            "c": Rows("accuracy", np.array([1, 1, 1, 0]))}
    numbers = {"base": {"tasks": {"a": 60.0, "b": 50.0, "c": 40.0}},
               "lora": {"individual": {"tasks": {"a": 64.9, "b": 55.0, "c": 70.0}}}}
    check = task_check(numbers, rows, "lora")
    assert check["a"]["learnt"] == 0 and check["a"]["gain"] == pytest.approx(4.9)  # 4.9 < 5
    assert check["b"]["learnt"] == 1  # exactly +5 over the head, above chance (50)
    assert check["c"]["learnt"] == 0 and check["c"]["chance"] == pytest.approx(75.0)  # +30, but under always-1
    assert task_check(numbers, rows, "lora", margin=4.0)["a"]["learnt"] == 1
