"""Merge hyper-parameters chosen on validation and reported on test (docs/statistics.md).

The choice only ever sees validation results: `choose_on_validation` takes nothing else, and
`chosen_test_result` looks up the test result of the chosen point after the choice is made, so no test
score can influence which grid point is reported.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any, Mapping, Sequence, TypeVar

from osrm_core.errors import OsrmError

T = TypeVar("T")


def params_key(params: Mapping[str, Any]) -> str:
    """A canonical string key of a grid point's parameters (JSON, sorted keys): {"lam": 0.5} -> '{"lam": 0.5}'."""
    return json.dumps(dict(params), sort_keys=True)


def choose_on_validation(grid: Sequence[Mapping[str, Any]]) -> dict:
    """The grid point with the best validation average: grid = [{"params": dict, "average": float}, ...].

    Ties (equal averages) go to the FIRST point in grid order, so the caller decides the preference by
    ordering the grid (e.g. the paper default first). Returns a copy of the chosen entry. A NaN or missing
    average is an error, not a loss: it means a grid point failed to evaluate."""
    if not grid:
        raise OsrmError("choose_on_validation: the validation grid is empty (sweep at least one grid point)")
    best = None
    for i, point in enumerate(grid):
        avg = point.get("average")
        if "params" not in point or not isinstance(avg, numbers.Real) or math.isnan(avg):
            raise OsrmError(f"choose_on_validation: grid point {i} ({point.get('params')}) needs 'params' and a "
                            f"numeric, non-NaN 'average'; got average={avg!r} (re-run that grid point)")
        if best is None or avg > best["average"]:  # strict: an equal later point does not replace the first
            best = point
    return {"params": dict(best["params"]), "average": float(best["average"])}


def chosen_test_result(validation: Sequence[Mapping[str, Any]], test: Mapping[str, T]) -> dict:
    """The test result of the validation-chosen grid point.

    validation: [{"params": dict, "average": float}, ...] (validation scores only);
    test: params_key(params) -> that point's test result (any value: an average, a per-task dict, ...).
    Returns {"params": dict, "validation_average": float, "test": test[params_key(chosen params)]}."""
    chosen = choose_on_validation(validation)
    key = params_key(chosen["params"])
    if key not in test:
        raise OsrmError(f"chosen_test_result: no test result for the chosen grid point {key} "
                        f"(evaluate that point on test; keys are params_key(params))")
    return {"params": chosen["params"], "validation_average": chosen["average"], "test": test[key]}
