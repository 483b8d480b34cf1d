"""Sentence-pair tasks built from real text, labelled by where the sentences come from.

No sentence-pair data ships in the packages (DESIGN.md §5), so pairs are drawn from single texts
whose provenance gives the label. Whole groups (articles, movies) are assigned to one split before
pairing, so no text is shared between splits, and each sentence/review is used in at most one pair.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from functools import lru_cache

from osrm_core.tasks import sources
from osrm_core.tasks.splits import SPLITS, Row, split_groups, stable_rng, text_key

Item = tuple[str, str]  # (group id, text)


def _weighted_pick(pool: dict[str, list[Item]], keys: list[str], rng: random.Random) -> str:
    """A key of ``pool`` chosen with probability proportional to how many items it has left."""
    return rng.choices(keys, weights=[len(pool[k]) for k in keys])[0]


def _draw_same(pool: dict[str, list[Item]], rng: random.Random) -> tuple[Item, Item] | None:
    """Two items of one topic from different groups, removed from the pool."""
    topics = sorted(t for t, items in pool.items() if items and any(g != items[-1][0] for g, _ in items))
    if not topics:
        return None
    items = pool[_weighted_pick(pool, topics, rng)]
    first = items.pop()
    j = next(i for i in range(len(items) - 1, -1, -1) if items[i][0] != first[0])
    return first, items.pop(j)


def _draw_different(pool: dict[str, list[Item]], rng: random.Random) -> tuple[Item, Item] | None:
    """Two items of two different topics, removed from the pool."""
    topics = sorted(t for t, items in pool.items() if items)
    if len(topics) < 2:
        return None
    a = _weighted_pick(pool, topics, rng)
    b = _weighted_pick(pool, [t for t in topics if t != a], rng)
    return pool[a].pop(), pool[b].pop()


def pair_up(pool: dict[str, list[Item]], n_pairs: int, rng: random.Random) -> list[Row]:
    """Up to ``n_pairs`` rows alternating same-topic and different-topic pairs (50/50)."""
    rows: list[Row] = []
    for i in range(n_pairs):
        same = i % 2 == 0
        pair = _draw_same(pool, rng) if same else _draw_different(pool, rng)
        if pair is None:
            break
        rows.append({"sentence1": pair[0][1], "sentence2": pair[1][1], "label": "same" if same else "different"})
    rng.shuffle(rows)
    return rows


def _body_sentences(article: sources.Article, per_article: int, min_words: int, max_words: int) -> list[str]:
    """The first ``per_article`` body sentences (after the lead paragraph) of a usable length."""
    out = []
    for paragraph in article.paragraphs[1:]:
        for sentence in sources.split_sentences(paragraph):
            if min_words <= sources.word_count(sentence) <= max_words:
                out.append(sentence)
            if len(out) == per_article:
                return out
    return out


def _unique_texts(items: dict[str, list[str]]) -> dict[str, list[str]]:
    """Drop every text that occurs in more than one group (or twice in one), case-insensitively."""
    counts = Counter(text_key({"t": t}, ["t"]) for texts in items.values() for t in texts)
    return {g: [t for t in texts if counts[text_key({"t": t}, ["t"])] == 1] for g, texts in items.items()}


@lru_cache(maxsize=4)
def _article_sentences(per_article: int, min_words: int, max_words: int) -> tuple[dict, dict]:
    """Topic and usable unique body sentences of every BBC article, keyed ``topic/doc_id`` (seed-free)."""
    articles = {f"{a.topic}/{a.doc_id}": a for a in sources.read_bbc()}
    texts = _unique_texts(
        {g: _body_sentences(a, per_article, min_words, max_words) for g, a in articles.items()}
    )
    return {g: a.topic for g, a in articles.items()}, texts


def build_same_topic(options: dict, sizes: dict, seed: int) -> dict:
    """BBC body sentences in pairs: same news topic or not (binary, balanced; an MRPC/QQP-shaped pair task)."""
    topics, texts = _article_sentences(
        int(options.get("sentences_per_article", 3)),
        int(options.get("min_words", 6)),
        int(options.get("max_words", 40)),
    )
    n_eval = round(float(options.get("eval_group_fraction", 0.15)) * len(topics))
    groups = split_groups(list(topics), {"validation": n_eval, "test": n_eval}, seed, "same_topic")
    rng = stable_rng("same_topic", "pairs", seed)
    out = {}
    for split in SPLITS:
        pool: dict[str, list[Item]] = defaultdict(list)
        for g in groups[split]:
            pool[topics[g]].extend((g, t) for t in texts[g])
        for topic in sorted(pool):
            rng.shuffle(pool[topic])
        out[split] = pair_up(pool, sizes[split], rng)
    return out


@lru_cache(maxsize=4)
def _movie_texts(max_words: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Plot (first sentences) and review snippets of every movie that has both."""
    plots: dict[str, str] = {}
    reviews: dict[str, list[str]] = defaultdict(list)
    for r in sources.read_rotten_tomatoes():
        if not r.has_plot_and_reviews or not r.text.strip():
            continue
        if r.category == "plot":
            plots.setdefault(r.movie, sources.first_sentences(r.text, max_words))
        else:
            reviews[r.movie].append(sources.first_sentences(r.text, max_words))
    reviews = _unique_texts(reviews)
    movies = sorted(m for m in plots if reviews.get(m))
    return {m: plots[m] for m in movies}, {m: reviews[m] for m in movies}


def _match_rows(movies: list[str], plots: dict, reviews: dict, n_pairs: int, rng: random.Random) -> list[Row]:
    """Review paired with its own movie's plot (match) or another movie's plot (mismatch), 50/50."""
    items = [(m, text) for m in movies for text in reviews[m]]
    rng.shuffle(items)
    rows = []
    for i, (movie, review) in enumerate(items[:n_pairs]):
        match = i % 2 == 0
        plot_of = movie if match else rng.choice([m for m in movies if m != movie])
        rows.append({"plot": plots[plot_of], "review": review, "label": "match" if match else "mismatch"})
    return rows


def build_movie_match(options: dict, sizes: dict, seed: int) -> dict:
    """Does this review snippet belong to the movie this plot summary describes? (QNLI/MRPC-shaped)."""
    plots, reviews = _movie_texts(int(options.get("max_words", 40)))
    n_eval = int(options.get("eval_movies", 20))
    groups = split_groups(list(plots), {"validation": n_eval, "test": n_eval}, seed, "movie_match")
    rng = stable_rng("movie_match", "pairs", seed)
    return {s: _match_rows(sorted(groups[s]), plots, reviews, sizes[s], rng) for s in SPLITS}
