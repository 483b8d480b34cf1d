"""osrm_core.stats against hand computations, a plain-loop reference bootstrap, and SciPy."""

import math

import numpy as np
import pytest
from scipy import stats as sp

from osrm_core.errors import OsrmError
from osrm_core.metrics import compute
from osrm_core.stats import mean_sd, paired_bootstrap, t_interval, t_ppf, verdict


def test_mean_sd_by_hand_and_one_seed_is_nan():
    mean, sd = mean_sd([80.0, 82.0, 87.0])  # mean 83; squares 9 + 1 + 16 = 26; sd = sqrt(26 / 2)
    assert mean == pytest.approx(83.0) and sd == pytest.approx(math.sqrt(13.0))
    mean, sd = mean_sd([71.5])
    assert mean == 71.5 and math.isnan(sd)
    with pytest.raises(OsrmError):
        mean_sd([])


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_t_ppf_matches_scipy(level):
    for df in range(1, 31):
        for p in ((1 + level) / 2, (1 - level) / 2):
            assert t_ppf(p, df) == pytest.approx(sp.t.ppf(p, df), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("p", [1e-9, 0.2, 0.5, 0.5000001, 0.74, 0.76, 0.9999999])
@pytest.mark.parametrize("df", [1, 2, 7, 200])
def test_t_ppf_centre_and_far_tails(p, df):
    assert t_ppf(p, df) == pytest.approx(sp.t.ppf(p, df), rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("p,df", [(0.0, 3), (1.0, 3), (0.9, 0)])
def test_t_ppf_rejects_bad_input(p, df):
    with pytest.raises(OsrmError):
        t_ppf(p, df)


def test_t_interval_three_seeds_by_hand():
    # diffs 1, 2, 4.5: mean 2.5; sd = sqrt((2.25 + 0.25 + 4) / 2) = 1.8027756; se = sd / sqrt(3) = 1.0408330;
    # t_{0.975, 2} = 4.3026527; half width = 4.4783429
    low, high = t_interval([1.0, 2.0, 4.5])
    assert low == pytest.approx(2.5 - 4.4783429, abs=1e-6) and high == pytest.approx(2.5 + 4.4783429, abs=1e-6)
    assert verdict(low, high, 3) == "inconclusive"


def test_t_interval_matches_scipy_and_one_seed_is_inconclusive():
    diffs = np.random.default_rng(0).normal(1.0, 2.0, 7)
    ref = sp.t.interval(0.9, 6, loc=diffs.mean(), scale=sp.sem(diffs))
    np.testing.assert_allclose(t_interval(diffs, 0.9), ref, rtol=1e-10)
    low, high = t_interval([3.0])
    assert math.isnan(low) and math.isnan(high)
    assert verdict(low, high, 1) == "inconclusive (1 seed)"


@pytest.mark.parametrize("low,high,n,want", [(0.5, 2.0, 3, "better"), (-2.0, -0.1, 3, "worse"),
                                             (-1.0, 1.0, 3, "inconclusive"), (0.0, 0.0, 3, "inconclusive"),
                                             (0.0, 1.0, None, "inconclusive"),
                                             (math.nan, math.nan, None, "inconclusive"),
                                             (1.0, 2.0, 1, "inconclusive (1 seed)")])
def test_verdict(low, high, n, want):
    assert verdict(low, high, n) == want


# --- paired bootstrap --------------------------------------------------------------------------------------

METRICS = {"cls": "matthews", "pair": "accuracy_f1", "reg": "pearson_spearman", "acc": "accuracy"}


def make_runs(seed, n=60, seeds=("0", "1", "2"), noise=0.3):
    """seed -> task -> (preds, labels) with a fixed label vector per task (the shared test split)."""
    rng = np.random.default_rng(seed)
    labels = {"cls": rng.integers(0, 3, n), "pair": rng.integers(0, 2, n), "reg": rng.uniform(0, 5, n),
              "acc": rng.integers(0, 4, n)}
    runs = {}
    for s in seeds:
        runs[s] = {}
        for t, y in labels.items():
            if t == "reg":
                p = y + rng.normal(0, 1.0, n)
            else:
                p = np.where(rng.random(n) < noise, rng.integers(0, y.max() + 1, n), y)
            runs[s][t] = (p, y)
    return runs


def naive_bootstrap(groups, fns, n_boot, seed, normalised=False):
    """The documented procedure with plain loops: rows per task, then seeds, from one Generator."""
    rng = np.random.default_rng(seed)
    arm = groups[0]
    tasks, seeds = list(fns), list(arm)
    rows = {t: rng.integers(0, len(arm[seeds[0]][t][1]), (n_boot, len(arm[seeds[0]][t][1]))) for t in tasks}
    draws = rng.integers(0, len(seeds), (n_boot, len(seeds)))

    def stat(g, s, b):
        sc = {t: fns[t](groups[g][s][t][0][rows[t][b]], groups[g][s][t][1][rows[t][b]]) for t in tasks}
        if not normalised:
            return np.mean(list(sc.values()))
        ind = {t: fns[t](groups[g + 2][s][t][0][rows[t][b]], groups[g + 2][s][t][1][rows[t][b]]) for t in tasks}
        ratios = [100 * sc[t] / ind[t] for t in tasks if ind[t] > 0]
        return np.mean(ratios) if ratios else 0.0

    return np.array([np.mean([stat(0, seeds[i], b) - stat(1, seeds[i], b) for i in draws[b]])
                     for b in range(n_boot)])


def score_fn(metric):
    return lambda p, y: compute(metric, p, y)["score"]


def test_bootstrap_matches_plain_loop_reference():
    arm, ref = make_runs(1, noise=0.2), make_runs(1, noise=0.45)
    ref = {s: {t: (ref[s][t][0], arm[s][t][1]) for t in METRICS} for s in ref}  # same labels
    got = paired_bootstrap(arm, ref, METRICS, n_boot=40, seed=3)
    want = naive_bootstrap([arm, ref], {t: score_fn(m) for t, m in METRICS.items()}, 40, 3)
    np.testing.assert_allclose(got.replicates, want, atol=1e-10)
    point = np.mean([np.mean([compute(m, arm[s][t][0], arm[s][t][1])["score"]
                              - compute(m, ref[s][t][0], ref[s][t][1])["score"] for t, m in METRICS.items()])
                     for s in arm])
    assert got.estimate == pytest.approx(point)
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(want, [0.025, 0.975])))


def test_normalised_statistic_matches_plain_loop_reference():
    arm, ref = make_runs(2, noise=0.2), make_runs(2, noise=0.4)
    arm_ind, ref_ind = make_runs(2, noise=0.05), make_runs(2, noise=0.1)
    got = paired_bootstrap(arm, ref, METRICS, n_boot=30, seed=5, statistic="normalised",
                           arm_individual=arm_ind, ref_individual=ref_ind)
    want = naive_bootstrap([arm, ref, arm_ind, ref_ind], {t: score_fn(m) for t, m in METRICS.items()}, 30, 5, True)
    np.testing.assert_allclose(got.replicates, want, atol=1e-9)
    same = paired_bootstrap(arm, ref, METRICS, n_boot=30, statistic="normalised", arm_individual=arm,
                            ref_individual=ref)  # merged == individual for both arms: 100 - 100 everywhere
    assert same.estimate == 0.0 and same.low == 0.0 and same.high == 0.0


def test_identical_arms_give_exactly_zero():
    runs = make_runs(4)
    got = paired_bootstrap(runs, runs, METRICS, n_boot=50)
    assert got.estimate == 0.0 and (got.low, got.high) == (0.0, 0.0)
    assert verdict(got.low, got.high, 3) == "inconclusive"


def test_shifted_regression_predictions_change_nothing():
    """Pearson and Spearman ignore a shift +c: recomputing the metric per replicate gives exactly 0
    (a per-row error average would not)."""
    runs = make_runs(5)
    shifted = {s: {"reg": (runs[s]["reg"][0] + 2.5, runs[s]["reg"][1])} for s in runs}
    only = {s: {"reg": runs[s]["reg"]} for s in runs}
    got = paired_bootstrap(shifted, only, {"reg": "pearson_spearman"}, n_boot=50)
    np.testing.assert_allclose([got.estimate, got.low, got.high], 0.0, atol=1e-10)


def test_metric_names_equal_score_functions_on_the_resampled_rows():
    """The multiplicity-weighted metrics equal osrm_core.metrics recomputed on each replicate's rows, including
    heavy ties (Spearman's ranks within the multiset) and a constant prediction (correlation 0)."""
    arm, ref = make_runs(6, noise=0.1), make_runs(6, noise=0.3)
    for s in "01":
        y = np.round(arm[s]["reg"][1])  # the 0..5 grid of STS-B: many ties in labels and predictions
        arm[s]["reg"], ref[s]["reg"] = (np.round(arm[s]["reg"][0] * 2) / 2, y), (np.full(len(y), 2.5), y)
    arm, ref = ({s: r[s] for s in "01"} for r in (arm, ref))
    fast = paired_bootstrap(arm, ref, METRICS, n_boot=60, seed=1)
    loop = paired_bootstrap(arm, ref, {t: score_fn(m) for t, m in METRICS.items()}, n_boot=60, seed=1)
    np.testing.assert_allclose(fast.replicates, loop.replicates, atol=1e-9)
    assert fast.estimate == pytest.approx(loop.estimate, abs=1e-9)
    with pytest.raises(OsrmError, match="unknown metric"):
        paired_bootstrap(arm, ref, {"acc": "bleu"}, n_boot=5)


def one_task(arm_preds, ref_preds, labels):
    return ({"0": {"acc": (arm_preds, labels)}}, {"0": {"acc": (ref_preds, labels)}})


def test_one_seed_accuracy_equals_scipy_bootstrap():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 150)
    a, r = np.where(rng.random(150) < 0.8, y, 1 - y), np.where(rng.random(150) < 0.7, y, 1 - y)
    got = paired_bootstrap(*one_task(a, r, y), {"acc": "accuracy"}, n_boot=2000, seed=11)
    d = 100.0 * ((a == y).astype(float) - (r == y))  # the per-row difference: one sample, rows pair
    ref = sp.bootstrap((d,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(11))
    np.testing.assert_allclose(got.replicates, ref.bootstrap_distribution, atol=1e-10)
    assert (got.low, got.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-10)
    assert verdict(got.low, got.high, 1) == "inconclusive (1 seed)"


def test_rows_only_converges_to_the_binomial():
    """Arm right on all 200 rows, reference wrong on 60: a replicate is 100 · Binomial(200, 0.3) / 200."""
    y = np.zeros(200, dtype=int)
    r = y.copy()
    r[:60] = 1
    got = paired_bootstrap(*one_task(y, r, y), {"acc": "accuracy"}, n_boot=20000, seed=0)
    assert got.estimate == pytest.approx(30.0)
    assert got.replicates.mean() == pytest.approx(30.0, abs=0.1)
    assert got.replicates.std() == pytest.approx(100 * math.sqrt(0.3 * 0.7 / 200), rel=0.03)
    exact = 100 * sp.binom.ppf([0.025, 0.975], 200, 0.3) / 200
    assert got.low == pytest.approx(exact[0], abs=0.5) and got.high == pytest.approx(exact[1], abs=0.5)


def test_seeds_only_converges_to_the_seed_resampling_distribution():
    """Per-seed differences 0, 0, 100 with no row variation: a replicate is 100 · Binomial(3, 1/3) / 3."""
    y = np.zeros(40, dtype=int)
    arm = {s: {"acc": (y, y)} for s in "abc"}
    ref = {"a": {"acc": (y, y)}, "b": {"acc": (y, y)}, "c": {"acc": (y + 1, y)}}
    got = paired_bootstrap(arm, ref, {"acc": "accuracy"}, n_boot=20000, seed=0)
    assert got.estimate == pytest.approx(100 / 3)
    freq = [np.mean(np.isclose(got.replicates, 100 * k / 3)) for k in range(4)]
    np.testing.assert_allclose(freq, [8 / 27, 12 / 27, 6 / 27, 1 / 27], atol=0.012)


def test_pairing_keeps_a_uniform_improvement_positive():
    """Seeds differ a lot (ref MCC from ~0.2 to ~0.9) but the arm fixes 5 wrong rows in every seed: with seeds
    and rows paired no replicate can be negative; unpaired draws would be."""
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 120)
    ref, arm = {}, {}
    for s, noise in zip("abc", (0.1, 0.5, 0.85)):
        p = np.where(rng.random(120) < noise, (y + 1) % 3, y)
        fixed = p.copy()
        fixed[np.flatnonzero(p != y)[:5]] = y[np.flatnonzero(p != y)[:5]]
        ref[s], arm[s] = {"cls": (p, y)}, {"cls": (fixed, y)}
    got = paired_bootstrap(arm, ref, {"cls": "matthews"}, n_boot=300, seed=2)
    assert got.replicates.min() >= 0.0 and got.low > 0.0
    assert verdict(got.low, got.high, 3) == "better"


def test_bad_inputs_name_the_problem():
    runs = make_runs(9)
    other = make_runs(10)  # different labels
    with pytest.raises(OsrmError, match="labels differ"):
        paired_bootstrap(runs, other, METRICS, n_boot=5)
    with pytest.raises(OsrmError, match="seeds"):
        paired_bootstrap(runs, make_runs(9, seeds=("0", "1")), METRICS, n_boot=5)
    with pytest.raises(OsrmError, match="lacks tasks"):
        paired_bootstrap(runs, runs, METRICS | {"new": "accuracy"}, n_boot=5)
    with pytest.raises(OsrmError, match="arm_individual"):
        paired_bootstrap(runs, runs, METRICS, statistic="normalised")
    with pytest.raises(OsrmError, match="score_fns is empty"):
        paired_bootstrap(runs, runs, {})
    empty = {s: {"acc": (np.array([]), np.array([]))} for s in runs}
    with pytest.raises(OsrmError, match="non-empty"):
        paired_bootstrap(empty, empty, {"acc": "accuracy"})
    with pytest.raises(OsrmError, match="statistic"):
        paired_bootstrap(runs, runs, METRICS, statistic="median")
