"""osrm_core.metrics against the libraries the field uses (scikit-learn, SciPy)."""

import numpy as np
import pytest
from scipy.stats import pearsonr, rankdata as sp_rankdata, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from osrm_core import metrics


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 3, 6])
def test_classification_metrics_match_sklearn(seed, k):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, k, 200), rng.integers(0, k, 200)
    p[:80] = y[:80]  # correlated, so MCC is not ~0
    assert metrics.accuracy(y, p) == pytest.approx(accuracy_score(y, p))
    assert metrics.matthews(y, p) == pytest.approx(matthews_corrcoef(y, p))
    if k == 2:
        assert metrics.binary_f1(y, p) == pytest.approx(f1_score(y, p, zero_division=0))


@pytest.mark.parametrize("y,p", [([0, 0, 0], [0, 0, 0]), ([1, 1, 1], [1, 1, 1]), ([0, 1, 0], [1, 1, 1]),
                                 ([0, 0, 1], [0, 0, 0]), ([2, 2], [0, 1])])
def test_degenerate_cases_match_sklearn(y, p):
    y, p = np.array(y), np.array(p)
    assert metrics.matthews(y, p) == pytest.approx(matthews_corrcoef(y, p))
    if set(y) | set(p) <= {0, 1}:
        assert metrics.binary_f1(y, p) == pytest.approx(f1_score(y, p, zero_division=0))


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, 150).astype(float)  # many ties, like STS-B's 0..5 grid
    preds = labels + rng.normal(0, 1.5, 150)
    preds[:20] = 2.5
    np.testing.assert_allclose(metrics.rankdata(preds), sp_rankdata(preds))
    assert metrics.pearson(preds, labels) == pytest.approx(pearsonr(preds, labels)[0])
    assert metrics.spearman(preds, labels) == pytest.approx(spearmanr(preds, labels)[0])


def test_compute_scores_and_constant_correlation():
    out = metrics.compute("accuracy_f1", np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]))
    assert out["accuracy"] == pytest.approx(75.0) and out["f1"] == pytest.approx(80.0)
    assert out["score"] == pytest.approx(77.5)
    const = metrics.compute("pearson_spearman", np.full(5, 2.0), np.arange(5.0))
    assert const == {"pearson": 0.0, "spearman": 0.0, "score": 0.0}
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.compute("bleu", np.zeros(2), np.zeros(2))
