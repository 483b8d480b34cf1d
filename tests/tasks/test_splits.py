"""Unit tests of the split, de-duplication and text helpers."""

from __future__ import annotations

from collections import Counter

from osrm_pipeline.suites.sources import first_sentences, split_sentences, strip_urls
from osrm_pipeline.suites.splits import dedupe, quantile_strata, split_rows

SIZES = {"train": 60, "validation": 20, "test": 20}


def _rows(n_pos: int, n_neg: int) -> list[dict]:
    return [{"sentence": f"text {i}", "label": "pos" if i < n_pos else "neg"} for i in range(n_pos + n_neg)]


def test_split_is_stratified_disjoint_and_seeded():
    rows = _rows(200, 800)
    out = split_rows(rows, SIZES, seed=42, salt="t")
    assert {s: len(v) for s, v in out.items()} == SIZES
    for split in ("validation", "test"):
        assert Counter(r["label"] for r in out[split])["pos"] in (3, 4, 5)  # 20% of 20
    texts = [r["sentence"] for v in out.values() for r in v]
    assert len(texts) == len(set(texts))
    assert split_rows(rows, SIZES, seed=42, salt="t") == out
    assert split_rows(rows, SIZES, seed=43, salt="t") != out


def test_small_source_fills_eval_first():
    out = split_rows(_rows(10, 40), SIZES, seed=0, salt="t")
    assert [len(out[s]) for s in ("train", "validation", "test")] == [10, 20, 20]


def test_dedupe_drops_conflicting_labels_and_case_variants():
    rows = [
        {"sentence": "Same text", "label": "a"},
        {"sentence": "same  TEXT", "label": "a"},
        {"sentence": "clash", "label": "a"},
        {"sentence": "Clash", "label": "b"},
    ]
    assert dedupe(rows, ["sentence"]) == [rows[0]]
    assert len(dedupe([{"sentence": "x", "label": 1.0}, {"sentence": "x", "label": 2.0}], ["sentence"], True)) == 1


def test_quantile_strata():
    rows = [{"label": float(v)} for v in (5, 1, 3, 2, 4)]
    assert quantile_strata(rows, bins=5) == [4, 0, 2, 1, 3]


def test_text_helpers():
    text = "First one here. Second sentence follows! Third? yes"
    assert split_sentences(text) == ["First one here.", "Second sentence follows!", "Third? yes"]
    assert first_sentences(text, 6) == "First one here. Second sentence follows!"
    assert first_sentences("one two three four five", 3) == "one two three"
    assert strip_urls("great http://t.co/abc  day https://x.y/z") == "great day"
