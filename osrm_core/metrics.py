"""GLUE metrics computed locally (scikit-learn / scipy; no metric scripts from a hub)."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def predictions(logits: np.ndarray, regression: bool) -> np.ndarray:
    """Class ids (argmax) or the regression value (n,) from logits (n x num_labels)."""
    return logits[:, 0] if regression else logits.argmax(-1)


def compute(metric: str, preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metric values (percent) plus `score`, their mean (DESIGN.md §4)."""
    if metric == "accuracy":
        vals = {"accuracy": accuracy_score(labels, preds)}
    elif metric == "accuracy_f1":
        vals = {"accuracy": accuracy_score(labels, preds), "f1": f1_score(labels, preds, zero_division=0)}
    elif metric == "matthews":
        vals = {"matthews": matthews_corrcoef(labels, preds)}
    elif metric == "pearson_spearman":
        const = np.std(preds) == 0 or np.std(labels) == 0  # correlation undefined: report 0, not NaN
        vals = {"pearson": 0.0 if const else pearsonr(preds, labels)[0],
                "spearman": 0.0 if const else spearmanr(preds, labels)[0]}
    else:
        raise ValueError(f"unknown metric {metric!r}")
    vals = {k: 100.0 * float(v) for k, v in vals.items()}
    vals["score"] = float(np.mean(list(vals.values())))
    return vals
