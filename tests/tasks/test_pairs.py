"""Pair construction: groups stay in one split, labels are 50/50, false pairs mix two documents."""

from __future__ import annotations

from collections import Counter

from osrm_pipeline.suites import pairs
from osrm_pipeline.suites.splits import stable_rng

FIELDS, LABELS = ("a", "b"), ("no", "yes")


def _units(n_groups: int, per_group: int, strata: int = 2) -> list[pairs.Unit]:
    return [
        pairs.Unit(f"g{g}", f"s{(g + k) % strata}", f"first {g} {k}", f"second {g} {k}")
        for g in range(n_groups)
        for k in range(per_group)
    ]


def _origin(text: str) -> tuple[str, str]:
    """(group, index inside the group) a synthetic text was made from."""
    _, g, k = text.split()
    return g, k


def test_swap_pairs_balanced_each_text_once_false_pairs_cross_groups_same_stratum():
    units = _units(10, 4)
    stratum = {(u.group[1:], u.first.split()[2]): u.stratum for u in units}
    rows = pairs.swap_pairs(units, FIELDS, LABELS, stable_rng("t"))
    assert Counter(r["label"] for r in rows) == {"yes": 20, "no": 20}
    assert len({r["a"] for r in rows}) == len({r["b"] for r in rows}) == len(rows) == 40
    for r in rows:
        same = _origin(r["a"]) == _origin(r["b"])
        assert same == (r["label"] == "yes")
        if not same:
            assert _origin(r["a"])[0] != _origin(r["b"])[0], "a false pair inside one document"
            assert stratum[_origin(r["a"])] == stratum[_origin(r["b"])]


def test_swap_pairs_drops_the_remainder_of_each_stratum():
    rows = pairs.swap_pairs(_units(7, 1, strata=1), FIELDS, LABELS, stable_rng("t"))
    assert len(rows) == 4 and Counter(r["label"] for r in rows) == {"yes": 2, "no": 2}


def test_assign_groups_keeps_groups_whole_and_fills_eval_first():
    units = _units(30, 3)
    out = pairs.assign_groups(units, {"validation": 10, "test": 20, "train": 1}, stable_rng("g"))
    groups = {s: {u.group for u in us} for s, us in out.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["validation"]
    assert not groups["validation"] & groups["test"]
    assert 10 <= len(out["validation"]) < 13 and 20 <= len(out["test"]) < 23
    assert sum(len(us) for us in out.values()) == len(units)  # train takes all the rest


def test_unique_units_drops_units_with_a_repeated_text():
    units = _units(3, 1) + [pairs.Unit("g9", "s0", "First 0  0", "other")]
    kept = pairs.unique_units(units)
    assert [u.group for u in kept] == ["g1", "g2"]


def test_build_pairs_is_deterministic_in_the_split_seed():
    units = _units(60, 2)
    sizes = {"train": 40, "validation": 12, "test": 12}
    first = pairs.build_pairs(units, sizes, 42, "x", FIELDS, LABELS)
    assert first == pairs.build_pairs(units, sizes, 42, "x", FIELDS, LABELS)
    assert [len(first[s]) for s in ("train", "validation", "test")] == [40, 12, 12]
    assert first != pairs.build_pairs(units, sizes, 7, "x", FIELDS, LABELS)
