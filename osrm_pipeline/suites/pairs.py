"""Sentence-pair tasks built from real text, labelled by where the two texts come from.

No sentence-pair data ships in the packages (docs/data_card.md), so pairs are cut from single documents:
a *unit* is a true pair of texts of one document (a BBC headline and a sentence of its article; two
consecutive sentences of a plot summary). Whole documents are assigned to one split before pairing,
so no text is shared between splits. Inside a split, units are shuffled per stratum and taken four
at a time: two stay true pairs, the other two swap their second texts (two false pairs), so labels
are 50/50 and every text is used exactly once. Swapping inside a stratum (news topic, sentence
position) keeps the false pairs as alike as the true ones in everything but the label's signal.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from functools import lru_cache
from typing import NamedTuple

from osrm_pipeline.suites import sources
from osrm_pipeline.suites.splits import SPLITS, Row, stable_rng, text_key


class Unit(NamedTuple):
    """A true pair of texts from one document, and the stratum its false partners are drawn from."""

    group: str  # document id: the split unit
    stratum: str
    first: str
    second: str


def _key(text: str) -> tuple[str, ...]:
    return text_key({"t": text}, ["t"])


def unique_units(units: list[Unit]) -> list[Unit]:
    """Drop every unit with a text that occurs more than once anywhere (case/space-insensitive)."""
    counts = Counter(_key(t) for u in units for t in (u.first, u.second))
    return [u for u in units if counts[_key(u.first)] == 1 and counts[_key(u.second)] == 1]


def assign_groups(units: list[Unit], sizes: dict[str, int], rng: random.Random) -> dict[str, list[Unit]]:
    """Whole groups, in shuffled order, to validation until it has ``sizes`` units, then test, then train."""
    by_group: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        by_group[u.group].append(u)
    order = sorted(by_group)
    rng.shuffle(order)
    out: dict[str, list[Unit]] = {s: [] for s in SPLITS}
    split_order = iter(("validation", "test", "train"))
    split = next(split_order)
    for group in order:
        while split != "train" and len(out[split]) >= sizes[split]:
            split = next(split_order)
        out[split].extend(by_group[group])
    return out


def swap_pairs(units: list[Unit], fields: tuple[str, str], labels: tuple[str, str], rng: random.Random) -> list[Row]:
    """Rows from units, four per stratum at a time: 2 true pairs (``labels[1]``), 2 swapped (``labels[0]``).

    A stratum's last 1-3 units are dropped, so the labels are exactly balanced.
    """
    strata: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        strata[u.stratum].append(u)
    rows: list[Row] = []
    for stratum in sorted(strata):
        items = sorted(strata[stratum])
        rng.shuffle(items)
        for a, b, c, d in zip(*[iter(items)] * 4):
            for first, second, label in ((a, a, 1), (b, b, 1), (c, d, 0), (d, c, 0)):
                rows.append({fields[0]: first.first, fields[1]: second.second, "label": labels[label]})
    rng.shuffle(rows)
    return rows


def split_units(units: list[Unit], sizes: dict, seed: int, salt: str) -> dict[str, list[Unit]]:
    """The unique units by split, whole groups each (a few spare units per split: pairing drops some)."""
    units = unique_units(units)
    spare = 3 * len({u.stratum for u in units})  # swap_pairs may drop up to 3 units per stratum
    targets = {s: sizes[s] + spare for s in SPLITS}
    return assign_groups(units, targets, stable_rng(salt, "groups", seed))


def build_pairs(units: list[Unit], sizes: dict, seed: int, salt: str, fields: tuple, labels: tuple) -> dict:
    """Split units by group, pair them per split, and cap each split at its size."""
    groups = split_units(units, sizes, seed, salt)
    rng = stable_rng(salt, "pairs", seed)
    return {s: swap_pairs(groups[s], fields, labels, rng)[: sizes[s]] for s in SPLITS}


def _usable(sentence: str, min_words: int, max_words: int) -> bool:
    return min_words <= sources.word_count(sentence) <= max_words


def _lead_sentence(article: sources.Article, min_words: int, max_words: int) -> str | None:
    """The article's first sentence if it has a usable length (the story's who/what, as the headline)."""
    sentences = sources.split_sentences(article.paragraphs[0]) if article.paragraphs else []
    return sentences[0] if sentences and _usable(sentences[0], min_words, max_words) else None


@lru_cache(maxsize=4)
def headline_units(min_words: int, max_words: int) -> tuple[Unit, ...]:
    """(headline, lead sentence) of every BBC article that has both, stratified by topic.

    The lead sentence is also (the start of) ``news_topic``'s text for the article: the two tasks
    share texts, never labels (within each task no text is in two splits).
    """
    units = []
    for a in sources.read_bbc():
        sentence = _lead_sentence(a, min_words, max_words)
        if sentence and a.title and sources.word_count(a.title) <= max_words:
            units.append(Unit(f"{a.topic}/{a.doc_id}", a.topic, a.title, sentence))
    return tuple(units)


def build_headline_match(options: dict, sizes: dict, seed: int) -> dict:
    """BBC headline and a lead sentence: same story or another story of the same topic (MRPC/QQP-shaped)."""
    units = headline_units(int(options.get("min_words", 6)), int(options.get("max_words", 30)))
    return build_pairs(list(units), sizes, seed, "headline_match", ("headline", "sentence"), ("mismatch", "match"))


def build_news_headline(options: dict, sizes: dict, seed: int) -> dict:
    """BBC lead sentence -> its headline (free text). Articles fall in the splits they have in ``headline_match``
    (same units, same salt and sizes), so a merge of the two tasks never trains on a test article."""
    units = headline_units(int(options.get("min_words", 6)), int(options.get("max_words", 30)))
    groups = split_units(list(units), sizes, seed, "headline_match")
    rng = stable_rng("news_headline", "order", seed)
    out = {}
    for s in SPLITS:
        rows = [{"sentence": u.second, "label": u.first} for u in groups[s]]
        rng.shuffle(rows)
        out[s] = rows[: sizes[s]]
    return out


@lru_cache(maxsize=4)
def plot_units(min_words: int, max_words: int) -> tuple[Unit, ...]:
    """Consecutive sentence pairs (1st, 2nd), (3rd, 4th), ... of every IMDb plot summary.

    A pair is kept only if both sentences have a usable length; its stratum is its position, so a
    false second sentence comes from the same place in another movie's plot.
    """
    plots: dict[str, str] = {}
    for r in sources.read_rotten_tomatoes():
        if r.category == "plot" and r.text.strip():
            plots.setdefault(r.movie, r.text)
    units = []
    for movie in sorted(plots):
        sentences = sources.split_sentences(plots[movie])
        for k in range(0, len(sentences) - 1, 2):
            first, second = sentences[k], sentences[k + 1]
            if _usable(first, min_words, max_words) and _usable(second, min_words, max_words):
                units.append(Unit(movie, str(k // 2), first, second))
    return tuple(units)


def build_plot_continuation(options: dict, sizes: dict, seed: int) -> dict:
    """Two plot-summary sentences: does the second follow the first in one movie's plot? (RTE/QNLI-shaped)."""
    units = plot_units(int(options.get("min_words", 4)), int(options.get("max_words", 30)))
    labels = ("other_plot", "continues")
    return build_pairs(list(units), sizes, seed, "plot_continuation", ("sentence1", "sentence2"), labels)
