"""Exported-model artifact (`osrm export --out DIR`): per task a standalone Hugging Face classifier folder
`DIR/<task>/`, and the body update as PEFT LoRA: `DIR/adapter/` (one shared adapter + `heads/<task>.safetensors`)
or `DIR/adapter/<task>/` (per-task models: individual adapters, EMR). `export.json` records the truncation."""

from __future__ import annotations

from typing import Any, ClassVar

from stages.io.artifacts.base import Artifact
from stages.io.manifest import BackboneId, Manifest


class ExportedManifest(Manifest):
    STAGE: ClassVar[str] = "export"
    backbone: BackboneId
    model: str
    tasks: list[str]
    per_task: bool
    max_rank: int
    base_model: str
    truncation: dict[str, Any]


class Exported(Artifact[ExportedManifest]):
    Manifest = ExportedManifest
