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


EDGE_SIDES = ("min", "max", "min-bound", "max-bound")  # the values of grid_edges' answer


def grid_edges(grid: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any],
               bounds: Mapping[str, tuple[float | None, float | None]] | None = None) -> dict[str, str]:
    """Which swept parameters of the chosen point sit on the edge of their grid (docs/merging.md, "Edges").

    grid: the points scored ([{"params": dict, ...}] or plain params dicts); chosen: the chosen params.
    A parameter is swept when the grid holds more than one value of it; the chosen value is an edge when it
    is that parameter's smallest ("min") or largest ("max") value in the grid — the optimum may lie beyond
    it. Where that edge is also a natural bound of the parameter that no grid can pass (bounds: parameter
    -> (lowest, highest) attainable value, None = open; e.g. density (None, 1.0), λ (0.0, None)) the
    answer is "min-bound" / "max-bound": an edge, but not a grid to widen. Interior choices, single-value
    parameters and non-numeric parameters are left out. Returns parameter -> side, sorted by parameter."""
    bounds = bounds or {}
    points = [g["params"] if "params" in g else g for g in grid]
    out: dict[str, str] = {}
    for key in sorted(chosen):
        value = chosen[key]
        if not _is_number(value):
            continue
        values = {float(p[key]) for p in points if key in p and _is_number(p[key])}
        if len(values) < 2:
            continue
        lo, hi = bounds.get(key, (None, None))
        if float(value) <= min(values):
            out[key] = "min-bound" if lo is not None and float(value) <= lo else "min"
        elif float(value) >= max(values):
            out[key] = "max-bound" if hi is not None and float(value) >= hi else "max"
    return out


def beyond_edges(grid: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any],
                 bounds: Mapping[str, tuple[float | None, float | None]] | None = None) -> list[dict]:
    """The next points to score when the choice sits on a grid edge that is not a natural bound (docs/merging.md,
    "Edges"): per such parameter, the chosen point with that parameter one grid step further out (the step between
    the edge value and its neighbour in the grid), clipped to the bound; a positive parameter halves instead of
    reaching 0 or below; integers stay integers. Points already in the grid are left out.
    grid: [{"params": dict, ...}] or plain params dicts; chosen: the chosen params. Returns params dicts."""
    bounds = bounds or {}
    points = [g["params"] if "params" in g else g for g in grid]
    seen = {params_key(q) for q in points}
    out = []
    for key, side in grid_edges(points, chosen, bounds).items():
        if side not in ("min", "max"):
            continue
        values = sorted({float(q[key]) for q in points if key in q and _is_number(q[key])})
        v, lo, hi = float(chosen[key]), *bounds.get(key, (None, None))
        step = values[1] - values[0] if side == "min" else values[-1] - values[-2]
        new = v - step if side == "min" else v + step
        if side == "min" and v > 0 >= new:  # merge parameters are positive scales, shares and counts: approach 0
            new = v / 2
        new = max(new, lo) if lo is not None else new
        new = min(new, hi) if hi is not None else new
        if isinstance(chosen[key], int) and not isinstance(chosen[key], bool):
            new = int(round(new))
        else:
            new = float(f"{new:.10g}")  # 0.3 - 0.2 is 0.09999999999999998: a grid value as a user would write it
        point = {**chosen, key: new}
        if float(new) != v and params_key(point) not in seen:
            seen.add(params_key(point))
            out.append(point)
    return out


def param_bounds(model: type, scale: str | None = None) -> dict[str, tuple[float | None, float | None]]:
    """parameter (alias) -> (lowest, highest) attainable value of a pydantic Params model: its inclusive
    ge / le constraints (an exclusive gt / lt bound is never reached, so it is no bound here), and 0 as
    the lowest value of the scale parameter `scale` (λ or α = 0: no update at all)."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for name, field in model.model_fields.items():
        lo = hi = None
        for c in field.metadata:
            lo = getattr(c, "ge", None) if getattr(c, "ge", None) is not None else lo
            hi = getattr(c, "le", None) if getattr(c, "le", None) is not None else hi
        key = field.alias or name
        if key == scale:
            lo = 0.0 if lo is None else max(lo, 0.0)
        if lo is not None or hi is not None:
            out[key] = (lo, hi)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


EDGE_CODE = {"min": -1, "max": 1, "min-bound": -2, "max-bound": 2}  # metrics.json is numbers only (DVC metrics)
EDGE_TEXT = {-1: "edge: min", 1: "edge: max", -2: "edge: min, a natural bound", 2: "edge: max, a natural bound"}


def edge_numbers(by_seed: Mapping[str, Mapping[str, str]]) -> dict:
    """The report's numbers of grid_edges over seeds: {"seed<s>": {param: code}, "count": {param: seeds on an
    edge of it}, "seeds": seeds on any edge}, code EDGE_CODE (±1 min / max of the grid, ±2 also a natural
    bound). by_seed: "seed<s>" -> grid_edges' answer of that seed's choice."""
    out: dict = {s: {k: EDGE_CODE[side] for k, side in e.items()} for s, e in by_seed.items()}
    count: dict[str, int] = {}
    for e in by_seed.values():
        for k in e:
            count[k] = count.get(k, 0) + 1
    return out | {"count": dict(sorted(count.items())), "seeds": sum(1 for e in by_seed.values() if e)}
