"""Deterministic, seeded, stratified train/validation/test splits without text leakage.

Every random choice comes from :func:`stable_rng`, a ``random.Random`` seeded with a string (Python
hashes string seeds with SHA-512, independent of ``PYTHONHASHSEED``), so the same seed gives the same
rows in the same order on every machine.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence

SPLITS = ("train", "validation", "test")
Row = dict


def stable_rng(*parts: object) -> random.Random:
    """A generator seeded by the joined ``parts`` (e.g. task name, purpose, seed)."""
    return random.Random(":".join(str(p) for p in parts))


def text_key(row: Row, fields: Sequence[str]) -> tuple[str, ...]:
    """Case- and space-insensitive identity of a row's texts, used for de-duplication."""
    return tuple(" ".join(str(row[f]).casefold().split()) for f in fields)


def dedupe(rows: Iterable[Row], fields: Sequence[str], regression: bool = False) -> list[Row]:
    """Keep one row per distinct text; texts seen with conflicting class labels are dropped."""
    groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[text_key(row, fields)].append(row)
    out = []
    for copies in groups.values():
        if regression or len({r["label"] for r in copies}) == 1:
            out.append(copies[0])
    return out


def quantile_strata(rows: Sequence[Row], bins: int = 5) -> list[int]:
    """Stratum per row for a regression label: its quantile bin (0..bins-1)."""
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["label"], i))
    strata = [0] * len(rows)
    for rank, i in enumerate(order):
        strata[i] = rank * bins // max(len(rows), 1)
    return strata


def stratified_order(rows: Sequence[Row], strata: Sequence[Hashable], rng: random.Random) -> list[Row]:
    """Shuffle so that every prefix has (nearly) the strata's overall proportions.

    Each stratum is shuffled, its i-th item gets position (i + u) / n_stratum with u ~ U(0, 1), and
    all items are sorted by position: systematic sampling, so taking the first k rows stratifies.
    """
    groups: dict[Hashable, list[Row]] = defaultdict(list)
    for row, stratum in zip(rows, strata):
        groups[stratum].append(row)
    keyed = []
    for rank, stratum in enumerate(sorted(groups, key=str)):
        members = groups[stratum]
        rng.shuffle(members)
        n = len(members)
        keyed.extend(((i + rng.random()) / n, rank, row) for i, row in enumerate(members))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [row for _, _, row in keyed]


def take_splits(ordered: Sequence[Row], sizes: dict[str, int], rng: random.Random) -> dict[str, list[Row]]:
    """Validation first, then test, then train from what is left (each capped at its size).

    Each split is shuffled afterwards so its row order carries no stratum pattern.
    """
    out: dict[str, list[Row]] = {}
    start = 0
    for split in ("validation", "test", "train"):
        part = list(ordered[start : start + sizes[split]])
        start += len(part)
        rng.shuffle(part)
        out[split] = part
    return {split: out[split] for split in SPLITS}


def split_rows(
    rows: Sequence[Row],
    sizes: dict[str, int],
    seed: int,
    salt: str,
    strata: Callable[[Sequence[Row]], Sequence[Hashable]] | None = None,
) -> dict[str, list[Row]]:
    """Stratified seeded split of already de-duplicated rows (stratum = label unless given)."""
    rng = stable_rng(salt, "split", seed)
    keys = strata(rows) if strata else [row["label"] for row in rows]
    return take_splits(stratified_order(list(rows), keys, rng), sizes, rng)


def halve(
    rows: Sequence[Row], fields: Sequence[str], seed: int, salt: str, regression: bool = False
) -> dict[str, list[int]]:
    """Indices of ``rows`` in two disjoint halves, ``validation`` and ``test`` (docs/evaluation.md, "Splits").

    Used where a source has one labelled held-out split (GLUE's validation; an own task whose
    validation and test name the same data). Rows with the same texts (:func:`text_key`) form one
    unit and go to the same half, so no text is in both. Units are stratified by label (regression:
    the label's quantile bin, :func:`quantile_strata`), shuffled per stratum by
    ``stable_rng(salt, "halve", seed)`` and dealt alternately to validation and test (the turn runs on
    across strata, so the halves differ by at most one unit). Each half lists its units in
    :func:`stratified_order` (every prefix, i.e. every row cap, stays stratified) and a unit's rows in
    their source order. The result depends only on the rows, ``seed`` and ``salt``, never on caps.
    """
    units: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        units[text_key(row, fields)].append(i)
    members = list(units.values())
    heads = [{"label": rows[m[0]]["label"]} for m in members]
    keys = quantile_strata(heads) if regression else [h["label"] for h in heads]
    rng = stable_rng(salt, "halve", seed)
    by_stratum: dict[Hashable, list[int]] = defaultdict(list)
    for k, key in enumerate(keys):
        by_stratum[key].append(k)
    dealt: dict[str, list[int]] = {"validation": [], "test": []}
    turn = 0
    for stratum in sorted(by_stratum, key=str):
        group = by_stratum[stratum]
        rng.shuffle(group)
        for k in group:
            dealt[("validation", "test")[turn % 2]].append(k)
            turn += 1
    out = {}
    for half, picked in dealt.items():
        ordered = stratified_order(picked, [keys[k] for k in picked], rng)
        out[half] = [i for k in ordered for i in members[k]]
    return out
