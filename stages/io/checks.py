"""Checks a stage runs on the manifests it reads: is this upstream artifact made for this run's config?"""

from __future__ import annotations

from pathlib import Path

from osrm_core.errors import OsrmError
from stages.io.manifest import require_same


def check_subspace(run, task: str, manifest: dict, folder: Path) -> None:
    """A subspace must match this run's backbone, lora.rank, lora.blocks (layer set), estimator settings.

    One-line OsrmError naming the field and the command that fixes it.
    """
    cfg = run.cfg
    fix = f"rerun `osrm build-subspace --task {task}` with this config"
    require_same("backbone", run.backbone_identity()["weights"], manifest["backbone"]["weights"], folder,
                 f"{fix} (it was built for backbone {manifest['backbone'].get('name')!r})")
    require_same("lora.rank", cfg.lora.rank, manifest.get("rank"), folder, fix)
    blocks = manifest.get("blocks", manifest.get("config", {}).get("lora.blocks"))
    missing = sorted(set(cfg.lora.blocks) - set(blocks or ""))
    if missing:
        raise OsrmError(f"{folder}: subspace covers lora.blocks={blocks!r}, this run needs {cfg.lora.blocks!r} "
                        f"(layer set differs) — {fix}")
    built = manifest.get("config", {}).get("osrm", {})
    for key in ("estimator", "k", "include_padding", "seed"):
        require_same(f"osrm.{key}", getattr(cfg.osrm, key), built.get(key), folder, fix)
