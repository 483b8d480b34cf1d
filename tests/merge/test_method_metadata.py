"""Each merge method carries its own metadata (MergeMethod: scale, scaled_last, low_rank, grid), and merge.methods /
merge.sweep are checked once, when the config loads (osrm_core.merge.check_merge_config; docs/merging.md)."""

from __future__ import annotations

import pytest
import torch
from merge_testlib import random_updates

from osrm_core.errors import OsrmError
from osrm_core.merge import METHODS
from osrm_pipeline.config_sections import MergeConfig
from osrm_pipeline.pipeline_config import parse_config

# name -> (scale, scaled_last, low_rank): a new method must be added here, so its metadata is a decision
DECLARED = {
    "weight_average": (None, False, True), "task_arithmetic": ("lambda", False, True), "ties": ("lambda", True, False),
    "dare_linear": ("lambda", False, False), "dare_ties": ("lambda", True, False), "magnitude_prune": ("lambda", False, False),
    "fisher": (None, False, False), "regmean": (None, False, True), "emr": (None, False, False),
    "knots": ("lambda", False, True), "tsv_m": ("alpha", False, True), "iso_c": ("alpha", False, True),
}


def test_every_registered_method_declares_its_metadata():
    assert set(DECLARED) == set(METHODS)
    for name, m in METHODS.items():
        assert (m.scale, m.scaled_last, m.low_rank) == DECLARED[name], name
        lam = [f.alias or n for n, f in m.params.model_fields.items() if (f.alias or n) == "lambda"]
        assert m.scale in (lam or [m.scale]), f"{name} has a λ but does not declare it as its scale"
        for values in zip(*m.grid.values()):  # every declared grid value is a valid parameter value
            m.params.model_validate(dict(zip(m.grid, values)))


@pytest.mark.parametrize("name", sorted(n for n, m in METHODS.items() if m.scale))
def test_the_declared_scale_scales_the_merged_update(name):
    """Δ(scale = 2) = 2 Δ(scale = 1): what the study's λ = 1 variant and the λ curve assume."""
    m, u = METHODS[name], random_updates(T=3, d_out=9, d_in=7, ranks=2)

    def delta(s: float) -> torch.Tensor:
        return m.fn(u, m.params.model_validate({m.scale: s}), torch.Generator().manual_seed(3)).delta

    torch.testing.assert_close(delta(2.0), 2 * delta(1.0), rtol=1e-5, atol=1e-6)


def test_default_sweep_is_the_declared_grids_of_the_merged_methods():
    assert MergeConfig().sweep == {"task_arithmetic": {"lambda": [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0]},
                                   "ties": {"lambda": [0.5, 1.0, 1.5, 2.0], "density": [0.1, 0.2, 0.5]}}
    cfg = parse_config({"merge": {"methods": {"ties": {"density": 0.3}, "emr": {}}}})
    assert cfg.merge.sweep == {"ties": {"lambda": [0.5, 1.0, 1.5, 2.0], "density": [0.1, 0.2, 0.5]}}
    assert parse_config({"merge": {"methods": {"ties": {}}, "sweep": {}}}).merge.sweep == {}


@pytest.mark.parametrize("merge, words", [
    ({"methods": {"tiez": {}}}, "merge.methods has unknown method 'tiez'"),
    ({"methods": {"ties": {"density": 7}}}, "merge.methods.ties.density"),
    ({"methods": {"ties": {}}, "sweep": {"emr": {"lambda": [1.0]}}}, "merge.sweep.emr: 'emr' is not in merge.methods"),
    ({"methods": {"ties": {}}, "sweep": {"ties": {"alpha": [1.0]}}}, "merge.sweep.ties.alpha: 'ties' has no parameter"),
    ({"methods": {"ties": {}}, "sweep": {"ties": {"density": [0.2, 1.5]}}}, "merge.sweep.ties.density"),
])
def test_merge_parameters_are_checked_when_the_config_loads(merge, words):
    with pytest.raises(OsrmError) as err:
        parse_config({"merge": merge}, "study.yaml")
    msg = str(err.value)
    assert msg.startswith("study.yaml: ") and words in msg and "\n" not in msg and "Value error" not in msg, msg
