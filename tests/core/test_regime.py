"""osrm_core/regime.py on planted features whose null-space dimension is known, and the regime rows that
solve_subspaces adds to every layer's report (docs/regimes.md)."""

import pytest
import torch

from osrm_core import regime, subspace


def planted(n: int, m: int, d: int, seed: int = 0) -> torch.Tensor:
    """n rows (n x d, float32 like the cache) spanning a random m-dimensional subspace of R^d."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, m, generator=g) @ torch.randn(m, d, generator=g)).float()


@pytest.mark.parametrize("n,m,d", [(40, 12, 32), (400, 100, 384), (10, 10, 32), (5, 5, 8)])
def test_rank_of_planted_rows(n, m, d):
    s = subspace.sample_gram(planted(n, m, d))
    rank = regime.numerical_rank(s)
    assert rank == m and regime.null_dim(d, rank) == d - m


def test_enough_rows_leave_no_null_space():
    """(T-1)k >= d_in generic rows: full rank, null dim 0 (MiniLM's default: 4 x 100 = 400 rows >= 384)."""
    h = torch.cat([planted(100, 384, 384, seed=t) for t in range(4)])
    assert regime.numerical_rank(subspace.sample_gram(h)) == 384
    assert regime.numerical_rank(torch.zeros(5, 5)) == 0


def test_tolerance_is_relative_and_stated():
    s = torch.diag(torch.tensor([1.0, 1e-6, 1e-9, 1e-11, 0.0], dtype=torch.float64))
    assert regime.numerical_rank(s) == 3 and regime.numerical_rank(1e6 * s) == 3  # scale-free
    assert regime.numerical_rank(s, rel_tol=1e-7) == 2
    assert "1e-10" in regime.TOLERANCE and regime.REL_TOL == 1e-10


def test_captured_energy_null_space_zero_random_one():
    d, m, r = 32, 12, 4
    s = subspace.sample_gram(planted(40, m, d))
    a, _, _ = subspace.smallest_subspace(s, r, seed=1)
    assert regime.captured_energy(a, s) < 1e-9  # inside the null space
    assert regime.captured_energy(torch.eye(d)[:r].double(), torch.eye(d)) == pytest.approx(1.0)  # isotropic: any A is random
    # the mean over random subspaces of tr(A S A^T) / tr(S) * d / r is 1
    draws = [regime.captured_energy(subspace.random_orthonormal(r, d, seed), s) for seed in range(400)]
    assert sum(draws) / len(draws) == pytest.approx(1.0, rel=0.1)
    top = torch.linalg.eigh(s)[1][:, -r:].T  # the most-used directions capture the most
    assert regime.captured_energy(top, s) > 1


def test_layer_regime_summary_and_line():
    d, r = 32, 4
    s_null, s_full = subspace.sample_gram(planted(16, 16, d)), subspace.sample_gram(planted(64, 32, d))
    a_null, a_full = (subspace.smallest_subspace(s, r)[0] for s in (s_null, s_full))
    rows = [regime.layer_regime(a_null, s_null, 16), regime.layer_regime(a_full, s_full, 64)]
    assert rows[0] | {"captured_energy_vs_random": 0} == {"rows": 16, "d_in": d, "rank": 16, "null_dim": 16, "exact": True,
                                                          "captured_energy_vs_random": 0}
    assert rows[1]["null_dim"] == 0 and not rows[1]["exact"] and 0 < rows[1]["captured_energy_vs_random"] < 1
    both = regime.summarise(rows, r)
    assert both["layers"] == 2 and both["exact_layers"] == 1 and both["median_null_dim"] == 8
    assert (both["rows_min"], both["rows_max"], both["d_in_min"], both["d_in_max"]) == (16, 64, d, d)
    assert "exact null space (dim ≥ r=4) at 1 of 2 layers" in regime.regime_line(both)
    none = regime.regime_line(regime.summarise(rows[1:] * 12, r))
    assert none.startswith("no exact null space at any of 12 layers (other tasks give 64 rows ≥ d_in 32)")
    assert "least-energy, not orthogonal" in none and none.endswith("docs/regimes.md") and "\n" not in none
    assert regime.regime_line(regime.summarise(rows[:1], r)).startswith("exact null space (dim ≥ r=4) at all 1 layers")
    assert regime.summarise([], r) == {}


def test_token_energy_sees_what_the_means_hide():
    """A planted case of the map's finding (docs/regimes.md): A in the null space of 2 tasks' sample MEANS (each a
    mean of tokens that vary in every direction) captures ~ a random A's share of their TOKEN energy; A in the
    null space of the tokens themselves captures none. The line reports it and warns above TOKEN_WARN."""
    d, r, g = 32, 4, torch.Generator().manual_seed(3)
    tokens = {t: torch.randn(200, d, generator=g, dtype=torch.float64) for t in ("x", "y", "z")}
    grams, counts = {t: h.T @ h for t, h in tokens.items()}, {t: 200 for t in tokens}
    moment = regime.other_token_moment(grams, counts, "x")
    torch.testing.assert_close(moment, (grams["y"] / 200 + grams["z"] / 200) / 2)
    means = torch.stack([tokens[t][i:i + 20].mean(0) for t in ("y", "z") for i in range(0, 100, 20)])  # 10 rows
    a_means = subspace.smallest_subspace(subspace.sample_gram(means), r)[0]
    assert regime.captured_energy(a_means, subspace.sample_gram(means)) < 1e-9  # orthogonal to the means...
    assert regime.captured_energy(a_means, moment) > 0.7  # ...not to the tokens
    low = torch.cat([tokens[t][:, : d - r] for t in ("y", "z")])  # tokens leaving the last r coordinates empty
    a_null = torch.eye(d, dtype=torch.float64)[d - r:]
    low_grams = {"x": grams["x"], "y": low.T @ low, "z": low.T @ low}
    low_grams = {t: torch.nn.functional.pad(v, (0, r, 0, r)) if v.shape[0] < d else v for t, v in low_grams.items()}
    assert regime.captured_energy(a_null, regime.other_token_moment(low_grams, counts, "x")) < 1e-12
    row = regime.layer_regime(a_means, subspace.sample_gram(means), 10) | {
        "token_energy_vs_random": regime.captured_energy(a_means, moment)}
    summary = regime.summarise([row], r)
    assert summary["median_token_energy_vs_random"] == pytest.approx(row["token_energy_vs_random"])
    line = regime.regime_line(summary)
    assert "their held-out tokens:" in line and "not to the tokens" in line and line.endswith("docs/regimes.md")
    assert "median_token_energy_vs_random" not in regime.summarise([regime.layer_regime(a_means, moment, 10)], r)


class Planted:
    """FeatureSource with k planted sample-mean rows of rank m per module (and a token Gram of the same rows)."""

    def __init__(self, k, m, d, seed):
        self._rows = planted(k, m, d, seed)

    def rows(self, module):
        return self._rows

    def gram(self, module):
        return subspace.sample_gram(self._rows)

    def count(self, module):
        return self._rows.shape[0]


@pytest.mark.parametrize("estimator,k,expect_null", [
    ("sample-mean", 5, 32 - 2 * 5),  # (T-1)k = 10 generic rows < d = 32
    ("sample-mean", 40, 0),  # (T-1)k = 80 >= d
    ("task-mean", 40, 32 - 2),  # T-1 = 2 rows: always a null space
])
def test_solve_subspaces_reports_the_regime(estimator, k, expect_null):
    caches = {t: Planted(k, min(k, 32), 32, seed=i) for i, t in enumerate("abc")}
    _, report = subspace.solve_subspaces(caches, ["m0", "m1"], ["a"], estimator, 4, 7)
    for row in report["a"].values():
        reg = row["regime"]
        assert reg["d_in"] == 32 and reg["null_dim"] == expect_null and reg["exact"] == (expect_null >= 4)
        assert reg["rows"] == row["rows"] == (2 * k if estimator == "sample-mean" else 2)
        if reg["exact"]:
            assert reg["captured_energy_vs_random"] < 1e-8
        else:
            assert 0 < reg["captured_energy_vs_random"] < 1
