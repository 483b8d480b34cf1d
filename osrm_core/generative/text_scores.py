"""Per-row scores of generated text against the reference: SQuAD v1.1's normalisation, exact match, token F1,
and ROUGE-L.

The official SQuAD evaluation script (Rajpurkar et al. 2016) lower-cases, removes punctuation and the
articles a/an/the, and collapses whitespace before comparing; token F1 is the harmonic mean of precision and
recall of the normalised tokens (a bag: a token counts as often as it occurs in both). ROUGE-L (Lin 2004) is the
F-measure of the longest common subsequence of the two token sequences (order matters, unlike token F1), from
Google's maintained `rouge-score` package (its own tokenizer: lower case, letters and digits; no stemming).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text: str) -> str:
    """SQuAD's normalize_answer: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalise(prediction) == normalise(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 in [0, 1]; two empty answers agree (1.0), one empty answer scores 0.0."""
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge_l():
    """(rouge-score's RougeScorer for rougeL, its tokenizer), imported on first use: stages without free text never pay."""
    from rouge_score import rouge_scorer, tokenizers

    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizer), tokenizer


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure in [0, 1] (rouge-score's `rougeL`); two answers without a word agree (1.0), as in token F1."""
    scorer, tokenizer = _rouge_l()
    if not tokenizer.tokenize(prediction) and not tokenizer.tokenize(reference):
        return 1.0
    return float(scorer.score(reference, prediction)["rougeL"].fmeasure)  # score(target, prediction)


#: metric name -> per-row score (prediction, reference) -> [0, 1]
ROW_SCORES = {"exact_match": exact_match, "token_f1": token_f1, "rouge_l": rouge_l}
