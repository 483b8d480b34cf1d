"""Merging methods for LoRA task updates, one module at a time (docs/merging.md).

Each method lives in the file named after its config key and exposes ``METHOD`` (a ``MergeMethod``:
its Params model, ``fn(updates, params, generator) -> MergeResult``, the paper, and what it needs).
"""

from __future__ import annotations

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


__all__ = ["METHODS", "MergeMethod", "MergeResult", "ModuleUpdates", "get_method", "parse_params"]
