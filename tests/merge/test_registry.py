"""Registry, Params validation and input checking."""

from __future__ import annotations

import importlib

import pydantic
import pytest
import torch
from merge_testlib import random_updates

from osrm_core.errors import OsrmError
from osrm_core.merge import METHODS, get_method
from osrm_core.merge.types import NEEDS, ModuleUpdates

EXPECTED = {
    "weight_average", "task_arithmetic", "ties", "dare_linear", "dare_ties", "magnitude_prune",
    "fisher", "regmean", "emr", "knots", "tsv_m", "iso_c",
}


def test_registry_has_every_method_under_its_file_name():
    assert set(METHODS) == EXPECTED
    for key, method in METHODS.items():
        assert method.name == key
        module = importlib.import_module(f"osrm_core.merge.{key}")
        assert module.METHOD is method
        assert set(method.needs) <= set(NEEDS)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_module_docstring_cites_paper_and_variant(key):
    doc = importlib.import_module(f"osrm_core.merge.{key}").__doc__
    assert "arXiv" in doc and ("Variant" in doc or "variant" in doc)
    assert "arXiv" in METHODS[key].paper


def test_get_method_unknown_name_lists_valid_names():
    with pytest.raises(OsrmError) as err:
        get_method("tiez")
    msg = str(err.value)
    assert "tiez" in msg and all(k in msg for k in EXPECTED) and "\n" not in msg
    assert get_method("ties") is METHODS["ties"]


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_params_defaults_and_unknown_keys(key):
    params_cls = METHODS[key].params
    params_cls()  # all fields have defaults
    with pytest.raises(pydantic.ValidationError):
        params_cls.model_validate({"not_a_field": 1})
    for name, field in params_cls.model_fields.items():
        assert field.description, f"{key}.{name} has no description"


def test_design_defaults_and_lambda_alias():
    assert METHODS["task_arithmetic"].params().lambda_ == 0.3
    assert METHODS["ties"].params().density == 0.2
    assert METHODS["regmean"].params().alpha == 0.9
    assert METHODS["task_arithmetic"].params.model_validate({"lambda": 0.7}).lambda_ == 0.7
    assert METHODS["ties"].params.model_validate({"lambda_": 0.5}).lambda_ == 0.5
    with pytest.raises(pydantic.ValidationError):
        METHODS["ties"].params.model_validate({"density": 0})
    with pytest.raises(pydantic.ValidationError):
        METHODS["ties"].params.model_validate({"election": "majority"})


def test_wrong_number_of_weights_is_a_user_error():
    u = random_updates(T=3)
    m = METHODS["task_arithmetic"]
    with pytest.raises(OsrmError, match="weights"):
        m.fn(u, m.params(weights=[1.0, 2.0]), None)


@pytest.mark.parametrize("key,need", [("fisher", "fishers"), ("regmean", "grams")])
def test_missing_inputs_are_user_errors(key, need):
    m = METHODS[key]
    assert need in m.needs
    with pytest.raises(OsrmError, match=need):
        m.fn(random_updates(), m.params(), None)


def test_mismatched_shapes_are_user_errors():
    good = random_updates(T=2, d_out=5, d_in=4)
    with pytest.raises(OsrmError, match="layer.0.query"):
        ModuleUpdates(A=[good.A[0], torch.zeros(2, 3)], B=good.B, scale=good.scale, name="layer.0.query")
    with pytest.raises(OsrmError, match="grams"):
        ModuleUpdates(A=good.A, B=good.B, scale=good.scale, grams=[torch.eye(4)])
    with pytest.raises(OsrmError, match="fishers"):
        ModuleUpdates(A=good.A, B=good.B, scale=good.scale, fishers=[torch.ones(4, 5)] * 2)
