"""GLUE metrics (docs/evaluation.md) in plain NumPy.

No metric scripts from a hub, and no scikit-learn / SciPy at run time: importing those two costs ~1.8 s,
paid by every stage process that scores anything (tests/core/test_metrics.py checks these functions
against scikit-learn and SciPy on random and degenerate inputs).
"""

from __future__ import annotations

import numpy as np

from osrm_core.tasks.spec import ROW_MEAN_METRICS


def predictions(logits: np.ndarray, regression: bool) -> np.ndarray:
    """Class ids (argmax) or the regression value (n,) from logits (n x num_labels)."""
    return logits[:, 0] if regression else logits.argmax(-1)


def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    return float(np.mean(np.asarray(labels) == np.asarray(preds)))


def binary_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """F1 of the positive class 1: 2 tp / (2 tp + fp + fn); 0 when there is no positive anywhere."""
    y, p = np.asarray(labels) == 1, np.asarray(preds) == 1
    tp, fp, fn = np.sum(y & p), np.sum(~y & p), np.sum(y & ~p)
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom else 0.0


def matthews(labels: np.ndarray, preds: np.ndarray) -> float:
    """Multiclass MCC (Gorodkin 2004) from the confusion matrix C (k x k):
    (c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)), t/p = true/predicted class counts, c = trace, s = n; 0 if undefined."""
    classes, idx = np.unique(np.concatenate([labels, preds]), return_inverse=True)
    y, p = idx[: len(labels)], idx[len(labels):]
    conf = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(conf, (y, p), 1.0)
    t, q, c, s = conf.sum(1), conf.sum(0), np.trace(conf), conf.sum()
    denom = (s * s - q @ q) * (s * s - t @ t)
    return float((c * s - t @ q) / np.sqrt(denom)) if denom > 0 else 0.0


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n (n,), ties get the average of the ranks they span (SciPy's 'average' method)."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    inv = np.empty(len(x), dtype=np.intp)
    inv[order] = np.arange(len(x))
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]
    dense = np.cumsum(new)[inv]  # 1-based id of each value's tie group
    bounds = np.r_[np.nonzero(new)[0], len(x)]  # tie group g spans sorted positions bounds[g-1]..bounds[g]-1
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else 0.0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(rankdata(a), rankdata(b))


def compute(metric: str, preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metric values (percent) plus `score`, their mean (docs/evaluation.md).

    A correlation with a constant side is undefined and reported as 0, not NaN."""
    if metric == "accuracy":
        vals = {"accuracy": accuracy(labels, preds)}
    elif metric == "accuracy_f1":
        vals = {"accuracy": accuracy(labels, preds), "f1": binary_f1(labels, preds)}
    elif metric == "matthews":
        vals = {"matthews": matthews(labels, preds)}
    elif metric == "pearson_spearman":
        vals = {"pearson": pearson(preds, labels), "spearman": spearman(preds, labels)}
    elif metric in ROW_MEAN_METRICS:  # generated text: preds are per-row scores in [0, 1]
        vals = {metric: float(np.mean(preds))}
    else:
        raise ValueError(f"unknown metric {metric!r}")
    vals = {k: 100.0 * float(v) for k, v in vals.items()}
    vals["score"] = float(np.mean(list(vals.values())))
    return vals
