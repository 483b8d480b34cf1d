"""The report's "is every task learnt?" check (osrm_core.study.chance_score / task_check) by hand."""

from __future__ import annotations

import numpy as np
import pytest

from osrm_core.report import check_table
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


def test_generative_tasks_are_learnt_over_the_zero_shot_floor():
    """A generative task's floor is the prompted base model (zero-shot: `base`, no adapter); free text has no chance
    class (its rows hold scores: chance 0, never the 100 that a constant 'label' of ones would give)."""
    rows = {"headline": Rows("rouge_l", np.ones(4, dtype=np.float32)), "words": Rows("accuracy_f1", np.array([0, 1, 0, 1])),
            "faint": Rows("token_f1", np.ones(3, dtype=np.float32))}
    numbers = {"base": {"tasks": {"headline": 12.0, "words": 61.0, "faint": 30.0}},
               "lora": {"individual": {"tasks": {"headline": 17.0, "words": 66.5, "faint": 34.9}}}}
    check = task_check(numbers, rows, "lora")
    assert check["headline"] == {"chance": 0.0, "floor": 12.0, "individual": 17.0, "gain": 5.0, "learnt": 1}
    assert check["words"]["learnt"] == 1 and check["words"]["chance"] == pytest.approx((50 + 200 / 3) / 2)
    assert check["faint"]["learnt"] == 0 and check["faint"]["gain"] == pytest.approx(4.9)  # zero-shot + 4.9 < + 5
    table = check_table(check, "lora", 5.0)
    assert "no adapter (task head only / zero-shot)" in table and "**Not learnt: faint**" in table
    numbers["lora"]["individual"]["tasks"]["words"] = 58.0  # +5 over a zero-shot of 53 but under always-"yes" (58.3)
    numbers["base"]["tasks"]["words"] = 53.0
    assert task_check(numbers, rows, "lora")["words"]["learnt"] == 0
