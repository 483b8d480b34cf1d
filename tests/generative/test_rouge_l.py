"""ROUGE-L of generated text (rouge-score's rougeL), per row: by hand, against a plain LCS, and through the metric,
the paired bootstrap and an own task's declaration."""

from __future__ import annotations

import random

import numpy as np
import pytest

from osrm_core.generative.text_scores import ROW_SCORES, rouge_l, token_f1
from osrm_core.metrics import compute
from osrm_core.stats import paired_bootstrap
from osrm_pipeline.suites import load_task, resolve_suite
from tests.generative.tiny_lm import write_data


def _lcs_f(pred: list[str], ref: list[str]) -> float:
    """F-measure of the longest common subsequence (Lin 2004), by dynamic programming."""
    table = [[0] * (len(ref) + 1) for _ in range(len(pred) + 1)]
    for i, p in enumerate(pred):
        for j, r in enumerate(ref):
            table[i + 1][j + 1] = table[i][j] + 1 if p == r else max(table[i][j + 1], table[i + 1][j])
    lcs = table[-1][-1]
    return 0.0 if lcs == 0 else 2 * lcs / (len(pred) + len(ref))  # 2PR / (P + R) with P = lcs/|pred|, R = lcs/|ref|


def test_rouge_l_by_hand():
    assert rouge_l("the cat sat on the mat", "a cat sat on a mat") == pytest.approx(2 / 3)  # LCS cat sat on mat: 4 of 6
    assert rouge_l("Mrs Howard gets key role!", "mrs howard gets key election role") == pytest.approx(2 * 5 / 11)
    assert rouge_l("b a", "a b") == pytest.approx(0.5) and token_f1("b a", "a b") == 1.0  # order counts, unlike token F1
    assert rouge_l("", "") == 1.0 and rouge_l("...", "") == 1.0 and rouge_l("word", "") == 0.0 and rouge_l("", "word") == 0.0
    assert ROW_SCORES["rouge_l"] is rouge_l


def test_rouge_l_is_the_lcs_f_measure_of_its_tokens():
    rng, words = random.Random(0), "alpha beta gamma delta eps zeta eta theta".split()
    for _ in range(50):
        pred, ref = ([rng.choice(words) for _ in range(rng.randint(1, 8))] for _ in range(2))
        assert rouge_l(" ".join(pred), " ".join(ref)) == pytest.approx(_lcs_f(pred, ref))


def test_rouge_l_rows_average_and_bootstrap_like_any_row_score():
    scores, ones = np.array([1.0, 0.5, 0.0, 0.25]), np.ones(4)
    assert compute("rouge_l", scores, ones) == {"rouge_l": 43.75, "score": 43.75}
    runs, other = {"0": {"t": (scores, ones)}}, {"0": {"t": (np.zeros(4), ones)}}
    boot = paired_bootstrap(runs, other, {"t": "rouge_l"}, n_boot=200, seed=0)
    slow = paired_bootstrap(runs, other, {"t": lambda p, y: 100 * float(np.mean(p))}, n_boot=200, seed=0)
    assert boot.estimate == pytest.approx(43.75) and np.allclose(boot.replicates, slow.replicates)


def test_an_own_free_text_task_declares_rouge_l(tmp_path):
    write_data(tmp_path)
    task = {"name": "colour", "loader": "files", "path": "data.jsonl", "metric": "rouge_l",
            "generate": {"prompt": "colour of {thing} ?", "target": "colour"}}
    spec, data = load_task(resolve_suite({"suite": "gen", "tasks": [task]}, base_dir=tmp_path), "colour")
    assert spec.metric == "rouge_l" and isinstance(data["test"][0]["label"], str)
