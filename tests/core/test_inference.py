"""osrm_core.inference: the seed-level interval against the plain t-interval and by hand, Holm by hand."""

import math

import numpy as np
import pytest
from scipy import stats as sp

from osrm_core.errors import OsrmError
from osrm_core.inference import adjusted_verdict, holm, seed_interval
from osrm_core.stats import t_interval, t_sf2


def test_without_row_variance_it_is_the_t_interval_over_seeds():
    diffs = [1.0, 2.0, 4.5]
    si = seed_interval(diffs, np.zeros(50))
    assert (si.low, si.high) == pytest.approx(t_interval(diffs), abs=1e-9) and si.df == pytest.approx(2.0)
    t = si.estimate / si.se
    assert si.p == pytest.approx(2 * sp.t.sf(t, 2), rel=1e-8)


def test_row_variance_adds_and_df_stays_seeds_minus_one():
    diffs = np.array([1.0, 2.0, 4.5])
    reps = np.random.default_rng(0).normal(2.5, 1.0, 400)
    a, b = diffs.var(ddof=1) / 3, reps.var(ddof=1)
    nu = 2
    si = seed_interval(diffs, reps)
    assert si.se == pytest.approx(math.sqrt(a + b)) and si.df == pytest.approx(nu)
    half = sp.t.ppf(0.975, nu) * math.sqrt(a + b)
    assert (si.low, si.high) == pytest.approx((2.5 - half, 2.5 + half), rel=1e-8)
    assert si.p == pytest.approx(2 * sp.t.sf(2.5 / math.sqrt(a + b), nu), rel=1e-7)


def test_identical_seeds_keep_the_row_variance_and_one_seed_has_no_p():
    reps = np.random.default_rng(1).normal(2.0, 0.5, 300)
    si = seed_interval([2.0, 2.0, 2.0], reps)
    assert si.df == 2 and si.se == pytest.approx(reps.std(ddof=1))
    one = seed_interval([2.0], np.random.default_rng(1).normal(2.0, 0.5, 300))
    assert math.isnan(one.p) and one.low < 2.0 < one.high
    assert adjusted_verdict(2.0, one.p) == "inconclusive (1 seed)"
    with pytest.raises(OsrmError):
        seed_interval([], np.zeros(3))


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
