"""Subspace artifact: `subspaces/seed<S>/<arm>/<task>/subspace.safetensors` (one r x d_in A_t per target layer) + report.json."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from osrm_core.errors import OsrmError
from stages.io.artifacts.base import Artifact, recorded_hash
from stages.io.manifest import BackboneId, Manifest, require_same

FILE = "subspace.safetensors"


class SubspaceManifest(Manifest):
    STAGE: ClassVar[str] = "build-subspace"
    backbone: BackboneId
    arm: str
    task: str
    modules: list[str]
    estimator: str
    objective: str | None = None
    contrast_ridge: float | None = None
    rank: int
    blocks: str
    include_padding: bool
    k: int
    seed: int


class Subspace(Artifact[SubspaceManifest]):
    Manifest = SubspaceManifest
    UNUSED: ClassVar[str] = "no_subspace.json"  # in the folder of an arm that starts from no subspace, instead of tasks

    @staticmethod
    def path(layout, arm: str, task: str):
        return layout.subspace(arm, task)

    @staticmethod
    def hint(arm: str, task: str, seed: int) -> str:
        return f"osrm build-subspace --arm {arm} --task {task} --seed {seed}"

    def check(self, run, arm: str, task: str) -> None:
        """Same backbone, lora.rank, a layer set covering lora.blocks, the same estimator settings, and built
        from the features that are on disk now (the upstream hashes it recorded)."""
        m, cfg = self.manifest, run.cfg
        fix = self.fix(arm, task) + " with this config"
        require_same("backbone", run.backbone_identity()["weights"], m.backbone.weights, self.folder,
                     f"{fix} (it was built for backbone {m.backbone.name!r})")
        require_same("lora.rank", cfg.lora.rank, m.rank, self.folder, fix)
        if set(cfg.lora.blocks) - set(m.blocks):
            raise OsrmError(f"{self.folder}: subspace covers lora.blocks={m.blocks!r}, this run needs {cfg.lora.blocks!r} "
                            f"(layer set differs) — {fix}")
        for key in ("estimator", "k", "include_padding", "objective"):
            require_same(f"osrm.{key}", getattr(cfg.osrm, key), getattr(m, key), self.folder, fix)
        if cfg.osrm.objective == "contrast":
            require_same("osrm.contrast_ridge", cfg.osrm.contrast_ridge, m.contrast_ridge, self.folder, fix)
        require_same("seed", cfg.seed, m.seed, self.folder, fix)
        for task, recorded in m.upstream.items():
            now = recorded_hash(run.layout.features(task))
            if now is not None and now != recorded:
                raise OsrmError(f"{self.folder}: built from older features of task '{task}' (they were re-extracted since) — {fix}")

    def tensors(self) -> dict[str, torch.Tensor]:
        """{module: A_t (rank x d_in) float32}."""
        from safetensors.torch import load_file

        return load_file(self.folder / FILE)

    @staticmethod
    def file(folder: Path) -> Path:
        return Path(folder) / FILE
