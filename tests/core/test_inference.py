"""osrm_core.inference: the seed-level interval against the plain t-interval and by hand, Holm by hand."""

import math

import numpy as np
import pytest
from scipy import stats as sp

from osrm_core.errors import OsrmError
from osrm_core.inference import adjusted_verdict, holm, row_variance, seed_interval
from osrm_core.stats import t_interval, t_sf2


def test_without_row_variance_it_is_the_t_interval_over_seeds():
    diffs = [1.0, 2.0, 4.5]
    si = seed_interval(diffs, np.zeros((3, 50)))
    assert (si.low, si.high) == pytest.approx(t_interval(diffs), abs=1e-9) and si.df == pytest.approx(2.0)
    t = si.estimate / si.se
    assert si.p == pytest.approx(2 * sp.t.sf(t, 2), rel=1e-8)


def test_row_term_is_the_mean_covariance_across_seeds_by_hand():
    """cross: the mean over ordered pairs s != s' of Cov_b(m_s, m_s'); total: Var_b(mean_s m_s); df stays k − 1."""
    rng = np.random.default_rng(0)
    shared, own = rng.normal(0, 1.0, 400), rng.normal(0, 2.0, (3, 400))
    reps = 2.5 + shared + own  # (S, B): a row effect every seed shares plus each seed's own
    diffs = np.array([1.0, 2.0, 4.5])
    c = np.cov(reps)
    cross = (c[0, 1] + c[0, 2] + c[1, 2]) * 2 / 6
    assert row_variance(reps) == pytest.approx(cross) and row_variance(reps, "total") == pytest.approx(reps.mean(0).var(ddof=1))
    a = diffs.var(ddof=1) / 3
    si = seed_interval(diffs, reps)
    assert si.se == pytest.approx(math.sqrt(a + cross)) and si.df == pytest.approx(2)
    half = sp.t.ppf(0.975, 2) * math.sqrt(a + cross)
    assert (si.low, si.high) == pytest.approx((2.5 - half, 2.5 + half), rel=1e-8)
    assert si.p == pytest.approx(2 * sp.t.sf(2.5 / math.sqrt(a + cross), 2), rel=1e-7)
    assert seed_interval(diffs, reps, row_term="total").se > si.se  # counts each seed's own row noise again


def test_row_terms_estimate_their_variance_components():
    """Per-seed replicates m_sb = r_b + e_sb (shared rows' sd 1, each seed's interaction sd 2): cross ≈ Var(r) = 1,
    total ≈ 1 + 4/k; a negative covariance by chance is clipped to 0."""
    rng = np.random.default_rng(1)
    reps = rng.normal(0, 1.0, 20000) + rng.normal(0, 2.0, (4, 20000))
    assert row_variance(reps) == pytest.approx(1.0, abs=0.06)
    assert row_variance(reps, "total") == pytest.approx(2.0, abs=0.06)
    anti = np.stack([np.arange(10.0), -np.arange(10.0)])
    assert row_variance(anti) == 0.0


def test_identical_seeds_keep_the_row_variance_and_one_seed_has_no_p():
    reps = np.random.default_rng(1).normal(2.0, 0.5, 300)
    si = seed_interval([2.0, 2.0, 2.0], np.stack([reps] * 3))
    assert si.df == 2 and si.se == pytest.approx(reps.std(ddof=1))
    one = seed_interval([2.0], reps[None])
    assert math.isnan(one.p) and one.low < 2.0 < one.high
    assert adjusted_verdict(2.0, one.p) == "inconclusive (1 seed)"
    with pytest.raises(OsrmError):
        seed_interval([], np.zeros((0, 3)))
    with pytest.raises(OsrmError):
        seed_interval([1.0, 2.0], np.zeros(30))  # the replicates must be per seed


@pytest.mark.parametrize("t,df", [(0.3, 2), (2.1, 2.7), (4.0, 9), (-1.5, 40.5), (0.0, 3)])
def test_t_sf2_matches_scipy(t, df):
    assert t_sf2(t, df) == pytest.approx(2 * sp.t.sf(abs(t), df), rel=1e-9)


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04, 0.30 -> x4, x3, x2, x1: 0.04, 0.06, 0.08, 0.30 (running max keeps the order)
    assert holm([0.04, 0.01, 0.30, 0.02]) == pytest.approx([0.08, 0.04, 0.30, 0.06])
    assert holm([0.5, 0.4]) == pytest.approx([0.8, 0.8])  # running max: 0.8 then max(0.8, 0.5)
    out = holm([math.nan, 0.01])
    assert math.isnan(out[0]) and out[1] == pytest.approx(0.01)  # NaN does not count in m
    assert adjusted_verdict(-1.0, 0.01) == "worse" and adjusted_verdict(1.0, 0.06) == "inconclusive"
