"""osrm_core.selection: the merge hyper-parameter is chosen on validation only."""

import numpy as np
import pytest

from osrm_core.errors import OsrmError
from osrm_core.metrics import compute
from osrm_core.selection import choose_on_validation, params_key, chosen_test_result

LAMBDAS = [0.3, 0.5, 0.7, 1.0]


def toy_split(seed, n=300):
    """Labels and, per λ, predictions whose accuracy peaks at λ = 0.5 on this split (noise differs per split)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    preds = {}
    for lam in LAMBDAS:
        err = 0.15 + 0.4 * abs(lam - 0.5) + rng.normal(0, 0.02)
        preds[lam] = np.where(rng.random(n) < err, 1 - y, y)
    return preds, y


def results(preds, y):
    return {lam: compute("accuracy", p, y)["score"] for lam, p in preds.items()}


def test_choice_is_the_best_validation_average_and_first_on_ties():
    grid = [{"params": {"lam": 0.3}, "average": 70.0}, {"params": {"lam": 0.5}, "average": 75.0},
            {"params": {"lam": 0.7}, "average": 75.0}, {"params": {"lam": 1.0}, "average": 60.0}]
    assert choose_on_validation(grid) == {"params": {"lam": 0.5}, "average": 75.0}
    assert choose_on_validation(grid[::-1])["params"] == {"lam": 0.7}  # grid order decides ties
    assert choose_on_validation([{"params": {"lam": 1.0}, "average": np.float32(1.5)}])["average"] == 1.5


def test_corrupting_test_labels_leaves_the_choice_unchanged():
    val_preds, val_y = toy_split(0)
    test_preds, test_y = toy_split(1)
    validation = [{"params": {"lam": lam}, "average": avg} for lam, avg in results(val_preds, val_y).items()]
    test = {params_key({"lam": lam}): avg for lam, avg in results(test_preds, test_y).items()}
    clean = chosen_test_result(validation, test)
    corrupted = np.random.default_rng(2).permutation(test_y)  # test labels scrambled: every test score changes
    bad = {params_key({"lam": lam}): avg for lam, avg in results(test_preds, corrupted).items()}
    worse = chosen_test_result(validation, bad)
    assert clean["params"] == worse["params"] == {"lam": 0.5}
    assert worse["test"] != clean["test"] and worse["validation_average"] == clean["validation_average"]


def test_the_test_best_point_is_not_chosen_when_validation_prefers_another():
    validation = [{"params": {"lam": 0.5, "k": 20}, "average": 80.0},
                  {"params": {"lam": 1.0, "k": 20}, "average": 79.0}]
    test = {params_key({"k": 20, "lam": 0.5}): 70.0, params_key({"lam": 1.0, "k": 20}): 90.0}  # key order irrelevant
    assert chosen_test_result(validation, test) == {"params": {"lam": 0.5, "k": 20}, "validation_average": 80.0,
                                                 "test": 70.0}


@pytest.mark.parametrize("grid,match", [([], "empty"), ([{"params": {"lam": 1}, "average": float("nan")}], "NaN"),
                                        ([{"average": 3.0}], "params"), ([{"params": {}, "average": None}], "average")])
def test_bad_grids_are_errors(grid, match):
    with pytest.raises(OsrmError, match=match):
        choose_on_validation(grid)


def test_missing_test_result_is_an_error():
    with pytest.raises(OsrmError, match="no test result"):
        chosen_test_result([{"params": {"lam": 0.5}, "average": 1.0}], {params_key({"lam": 1.0}): 2.0})


# --- edges of the grid (osrm_core.selection.grid_edges; docs/merging.md, "Edges of the grid") ----------------

from osrm_core.selection import EDGE_CODE, edge_numbers, grid_edges, param_bounds  # noqa: E402

TA = [{"params": {"lambda": lam}, "average": 0.0} for lam in (0.3, 0.2, 0.4, 1.0, 2.0)]  # default first, unsorted
TIES = [{"lambda": lam, "density": d} for d in (0.1, 0.2, 0.5) for lam in (0.5, 1.0, 2.0)]


@pytest.mark.parametrize("lam, side", [(2.0, "max"), (0.2, "min"), (0.4, None), (0.3, None), (1.0, None)])
def test_edge_of_a_one_parameter_grid(lam, side):
    assert grid_edges(TA, {"lambda": lam}) == ({"lambda": side} if side else {})


def test_a_single_value_grid_is_no_edge():
    grid = [{"lambda": 1.0, "density": 0.2}, {"lambda": 0.5, "density": 0.2}]  # density not swept
    assert grid_edges(grid, {"lambda": 1.0, "density": 0.2}) == {"lambda": "max"}
    assert grid_edges([{"lambda": 1.0}], {"lambda": 1.0}) == {} and grid_edges([], {"lambda": 1.0}) == {}


def test_edges_of_a_multi_parameter_grid():
    assert grid_edges(TIES, {"lambda": 2.0, "density": 0.1}) == {"density": "min", "lambda": "max"}
    assert grid_edges(TIES, {"lambda": 1.0, "density": 0.5}) == {"density": "max"}
    assert grid_edges(TIES, {"lambda": 1.0, "density": 0.2}) == {}
    # parameters the grid does not sweep (weights, strings) are never edges
    assert grid_edges(TIES, {"lambda": 1.0, "density": 0.2, "variant": "peft", "weights": None}) == {}


def test_edges_at_a_natural_bound_say_so():
    from osrm_core.merge import get_method

    bounds = param_bounds(get_method("ties").params, "lambda")
    assert bounds == {"density": (None, 1), "lambda": (0.0, None)}  # density in (0, 1]; λ = 0 is no update
    grid = [{"lambda": lam, "density": d} for d in (0.5, 1.0) for lam in (0.0, 1.0)]
    assert grid_edges(grid, {"lambda": 0.0, "density": 1.0}, bounds) == {"density": "max-bound", "lambda": "min-bound"}
    assert grid_edges(grid, {"lambda": 1.0, "density": 0.5}, bounds) == {"density": "min", "lambda": "max"}
    assert param_bounds(get_method("tsv_m").params, "alpha")["alpha"] == (0.0, None)


def test_edge_numbers_are_codes_per_seed_and_counts():
    out = edge_numbers({"seed1": {"lambda": "max"}, "seed2": {}, "seed3": {"lambda": "max", "density": "min-bound"}})
    assert out == {"seed1": {"lambda": 1}, "seed2": {}, "seed3": {"lambda": 1, "density": -2},
                   "count": {"density": 1, "lambda": 2}, "seeds": 2}
    assert set(EDGE_CODE) == {"min", "max", "min-bound", "max-bound"}


def test_format_params_marks_edges():
    from osrm_core.report import format_params

    edges = edge_numbers({"seed1": {"lambda": "max"}, "seed2": {"lambda": "max"}})
    assert format_params({"1": {"lambda": 2.0}, "2": {"lambda": 2.0}}, edges) == "lambda=2 (edge: max)"
    assert format_params({"1": {"lambda": 0.4}}) == "lambda=0.4"
    edges = edge_numbers({"seed1": {"density": "max-bound"}, "seed2": {}})
    assert format_params({"1": {"density": 1.0, "lambda": 1.0}, "2": {"density": 0.5, "lambda": 1.0}}, edges) == \
        "seed 1: density=1 (edge: max, a natural bound), lambda=1; seed 2: density=0.5, lambda=1"


def test_beyond_edges_steps_out_of_each_open_edge():
    """One point per parameter on an edge that is not a bound: the grid's step further out, the rest as chosen;
    clipped to the bound (density 1); a positive parameter halves instead of reaching 0; integers stay integers."""
    from osrm_core.merge import get_method
    from osrm_core.selection import beyond_edges

    bounds = param_bounds(get_method("ties").params, "lambda")
    assert beyond_edges(TIES, {"lambda": 2.0, "density": 0.1}, bounds) == [{"lambda": 2.0, "density": 0.05},
                                                                         {"lambda": 3.0, "density": 0.1}]
    assert beyond_edges(TIES, {"lambda": 1.0, "density": 0.2}, bounds) == []  # interior: nothing to widen
    assert beyond_edges([{"density": 0.5}, {"density": 0.9}], {"density": 0.9}, bounds) == [{"density": 1.0}]
    assert beyond_edges([{"density": 0.5}, {"density": 1.0}], {"density": 1.0}, bounds) == []  # at the bound
    assert beyond_edges([{"lambda": 0.3}, {"lambda": 0.7}], {"lambda": 0.3}, bounds) == [{"lambda": 0.15}]
    assert beyond_edges([{"k": 1}, {"k": 3}], {"k": 3}) == [{"k": 5}]
    assert beyond_edges([{"lambda": 0.3}, {"lambda": 0.5}, {"lambda": 0.9}], {"lambda": 0.3}, bounds) == [{"lambda": 0.1}]
    grid = [{"lambda": 0.5}, {"lambda": 1.0}, {"lambda": 1.5}]  # a point already scored is not proposed again
    assert beyond_edges(grid + [{"lambda": 0.25}], {"lambda": 0.25}, bounds) == [{"lambda": 0.125}]
