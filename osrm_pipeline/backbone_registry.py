"""The config's ``backbone:`` resolved to a :class:`BackboneSpec`: a name in configs/backbones/ (a project's
``configs/backbones/`` first, then the shipped ones), a backbone YAML path, a model folder with a config.json,
or a hub id ``org/name`` (docs/own_tasks.md)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from osrm_core.backbones import HUB_ID, BackboneSpec, infer_spec
from osrm_core.errors import OsrmError
from osrm_pipeline.config_dirs import config_files, configs_dir, find_config


def load_spec(name_or_path: str, project: str | Path | None = None) -> BackboneSpec:
    """A backbone from a configs/backbones/ name (``<project>/configs/backbones/`` first, then the shipped
    configs), a YAML path, a model folder (config.json) or a hub id."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return infer_spec(BackboneSpec(name=path.name, family="encoder", source=str(path)))
    if path.suffix not in (".yaml", ".yml") and "/" not in name_or_path:  # a name; may contain dots (llama-3.2-1b)
        path = find_config("backbones", name_or_path, project) or configs_dir() / "backbones" / f"{name_or_path}.yaml"
    elif path.suffix not in (".yaml", ".yml") and HUB_ID.match(name_or_path) and not name_or_path.startswith("."):
        return infer_spec(BackboneSpec(name=name_or_path, family="encoder", source=name_or_path))
    if not path.is_file():
        known = list(config_files("backbones", project))
        raise OsrmError(f"backbone: '{name_or_path}' not found — use one of {known}, a backbone YAML path, "
                        "a model folder with a config.json or a hub id org/name")
    try:
        spec = BackboneSpec.model_validate(yaml.safe_load(path.read_text()))
    except (ValidationError, yaml.YAMLError) as err:
        raise OsrmError(f"{path}: invalid backbone spec ({str(err).splitlines()[0]}) — fix that file") from None
    return spec if spec.targets is not None else infer_spec(spec, family=spec.family)
