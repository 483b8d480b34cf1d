"""The regime-map configs (configs/regimes*.yaml, docs/regimes.md) are valid pipeline configs whose backbone spec
loads without its weights, and the wider backbones' maps differ only in backbone and workdir, so their maps compare
arm by arm."""

from pathlib import Path

import pytest

from osrm_pipeline.backbone_registry import load_spec
from osrm_pipeline.pipeline_config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.name for p in (REPO / "configs").glob("regimes*.yaml"))


def test_the_maps_are_listed():
    assert {"regimes.yaml", "regimes_smollm2.yaml", "regimes_mpnet.yaml"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_regime_config_loads(name):
    cfg = load_config(REPO / "configs" / name)
    spec = load_spec(cfg.backbone)  # an explicit `targets:` in the backbone YAML: no weights read
    assert set(cfg.lora.blocks) <= set(spec.targets) and cfg.reference in cfg.arms and len(cfg.seeds) == 3
    assert cfg.workdir.rstrip("/").endswith(name.removesuffix(".yaml")), "each map has its own workdir"


def test_mpnet_map_is_the_smollm2_map_on_another_backbone():
    mpnet, smollm2 = (load_config(REPO / "configs" / n).model_dump() for n in ("regimes_mpnet.yaml", "regimes_smollm2.yaml"))
    assert (mpnet.pop("backbone"), smollm2.pop("backbone")) == ("mpnet", "smollm2")
    mpnet.pop("workdir"), smollm2.pop("workdir")
    assert mpnet == smollm2
