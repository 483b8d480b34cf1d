"""The report's verdicts under a known truth (osrm_core/calibration.py; docs/statistics.md "Calibration"):
the false-verdict rate under the null is at most 7% for 3, 5 and 10 seeds and seed sd 0, 2 and 4 points (400
simulated studies per cell, average and normalised score), and the power to detect a true +3 points with 10
seeds and sd 2 is printed and must be substantial. The seeds × rows percentile bootstrap it replaced is shown to
be anti-conservative in the same simulation."""

import pytest

from osrm_core.calibration import rate

SIM = dict(n_studies=400, n_boot=100, n_rows=300)


@pytest.mark.parametrize("n_seeds", [3, 5, 10])
@pytest.mark.parametrize("seed_sd", [0.0, 2.0, 4.0])
def test_false_verdict_rate_under_the_null(n_seeds, seed_sd):
    r = rate(n_seeds, seed_sd, delta=0.0, seed=100 * n_seeds + int(seed_sd), **SIM)
    print(f"\nnull k={n_seeds} sd={seed_sd:g}: average {r.any:.3f} (better {r.better:.3f}, worse {r.worse:.3f}), "
          f"normalised {r.norm_any:.3f}")
    assert r.any <= 0.07 and r.norm_any <= 0.07


def test_power_plus_three_points_ten_seeds_sd_two():
    """The cross-seed row term buys power over the conservative total row term (which counts each seed's row noise
    twice) without giving up the null rate above; neither ever says "worse" for a true +3."""
    r = rate(10, 2.0, delta=3.0, seed=7, **SIM)
    total = rate(10, 2.0, delta=3.0, seed=7, method="seed_total", **SIM)
    print(f"\npower +3 points, k=10, sd=2: average {r.better:.3f}, normalised {r.norm_better:.3f}; wrong sign {r.worse:.3f}"
          f"; with the total row term {total.better:.3f} / {total.norm_better:.3f}")
    assert r.better >= 0.6 and r.worse == 0.0 and r.better > total.better


def test_the_replaced_seeds_x_rows_bootstrap_says_better_too_often():
    """Why the headline interval changed: with 3 seeds and seed sd 4 the old percentile bootstrap over seeds × rows
    exceeds 5% false verdicts (what the verdicts issue measured), the seed-level interval does not."""
    old = rate(3, 4.0, method="seeds_x_rows", seed=3, **SIM)
    new = rate(3, 4.0, seed=3, **SIM)
    print(f"\nk=3 sd=4: seeds x rows bootstrap {old.any:.3f}, seed-level {new.any:.3f}")
    assert old.any > 0.07 and new.any <= 0.07
