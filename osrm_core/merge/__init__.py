"""Merging methods for LoRA task updates, one module at a time (docs/merging.md).

Each method lives in the file named after its config key and exposes ``METHOD`` (a ``MergeMethod``:
its Params model, ``fn(updates, params, generator) -> MergeResult``, the paper, and what it needs).
"""

from __future__ import annotations

import itertools

from osrm_core.errors import OsrmError
from osrm_core.merge import (
    dare_linear,
    dare_ties,
    emr,
    fisher,
    iso_c,
    knots,
    magnitude_prune,
    regmean,
    task_arithmetic,
    ties,
    tsv_m,
    weight_average,
)
from osrm_core.merge.types import MergeMethod, MergeResult, ModuleUpdates

METHODS: dict[str, MergeMethod] = {
    "weight_average": weight_average.METHOD,
    "task_arithmetic": task_arithmetic.METHOD,
    "ties": ties.METHOD,
    "dare_linear": dare_linear.METHOD,
    "dare_ties": dare_ties.METHOD,
    "magnitude_prune": magnitude_prune.METHOD,
    "fisher": fisher.METHOD,
    "regmean": regmean.METHOD,
    "emr": emr.METHOD,
    "knots": knots.METHOD,
    "tsv_m": tsv_m.METHOD,
    "iso_c": iso_c.METHOD,
}


def get_method(name: str) -> MergeMethod:
    """The registered method called ``name``; OsrmError naming the valid keys otherwise."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        valid = ", ".join(METHODS)
        raise OsrmError(f"unknown merge method {name!r} — use one of: {valid} (in --method or as a key of merge.methods)") from None


def parse_params(method: MergeMethod, raw: dict, where: str):
    """`raw` validated by the method's Params model; a bad value is a one-line OsrmError naming `where`.field."""
    from pydantic import ValidationError

    try:
        return method.params.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(map(str, first["loc"]))
        raise OsrmError(f"{where}{'.' + field if field else ''}: {first['msg']} — fix that parameter") from None


def default_grids(names) -> dict[str, dict[str, list[float]]]:
    """{method: its declared grid} for the registered methods among `names` that declare one (merge.sweep's
    default: the grids of the methods the config merges)."""
    return {n: {k: list(v) for k, v in METHODS[n].grid.items()} for n in names if n in METHODS and METHODS[n].grid}


def check_merge_config(methods: dict[str, dict], sweep: dict[str, dict[str, list]]) -> None:
    """The one check of merge.methods and merge.sweep, run when the config loads (later code trusts them): every
    method registered, its parameters valid; every grid of a listed method, over its parameters, each point
    (the method's parameters with the grid's values) valid. A problem is a one-line OsrmError naming the field."""
    for name, raw in methods.items():
        if name not in METHODS:
            raise OsrmError(f"merge.methods has unknown method {name!r} — use one of {sorted(METHODS)}")
        parse_params(METHODS[name], raw, f"merge.methods.{name}")
    for name, grid in sweep.items():
        if name not in methods:
            raise OsrmError(f"merge.sweep.{name}: '{name}' is not in merge.methods — add it there or remove its grid")
        m = METHODS[name]
        keys = set(parse_params(m, methods[name], f"merge.methods.{name}").model_dump(by_alias=True))
        for key in grid:
            if key not in keys:
                raise OsrmError(f"merge.sweep.{name}.{key}: '{name}' has no parameter '{key}' — use one of {sorted(keys)}")
        for values in itertools.product(*grid.values()):
            parse_params(m, {**methods[name], **dict(zip(grid, values))}, f"merge.sweep.{name}")


__all__ = ["METHODS", "MergeMethod", "MergeResult", "ModuleUpdates", "check_merge_config", "default_grids",
           "get_method", "parse_params"]
