"""Feature cache artifact: `features/<task>/features.zarr` (per target layer sample-mean rows, token Gram, count)."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from osrm_core.errors import OsrmError
from stages.io.artifacts.base import Artifact
from stages.io.feature_store import FeatureCache
from stages.io.manifest import BackboneId, Manifest, require_same


class Sampling(BaseModel):
    """The settings that decide what goes into the cache: which k rows (seed) and whether padding counts."""

    model_config = ConfigDict(extra="forbid")
    k: int
    include_padding: bool
    seed: int


class FeaturesManifest(Manifest):
    STAGE: ClassVar[str] = "extract-features"
    backbone: BackboneId
    task: str
    suite: str | dict[str, Any]  # a suite name / file, or an inline suite (its JSON)
    data: dict[str, Any]
    blocks: str
    sampling: Sampling
    modules: list[str]
    dims: dict[str, int]
    k: int
    world: int


class Features(Artifact[FeaturesManifest]):
    Manifest = FeaturesManifest

    @staticmethod
    def path(layout, task: str):
        return layout.features(task)

    @staticmethod
    def hint(task: str, seed: int) -> str:
        return f"osrm extract-features --task {task} --seed {seed}"

    @classmethod
    def open_all(cls, run, tasks: list[str], rank: int | None = None) -> dict[str, "Features"]:
        """Every task's features, checked, and all with the same modules (and, with `rank`, room for a
        rank-`rank` subspace in every layer, checked first)."""
        out: dict[str, Features] = {}
        for t in tasks:
            out[t] = art = cls.read(cls.path(run.layout, t), cls.hint(t, seed=run.layout.seed), run.layout.seed)
            if rank is not None:
                art.check_rank(rank)
            art.check(run, t)
            first = next(iter(out.values()))
            require_same("modules", first.manifest.modules, art.manifest.modules, art.folder, art.fix(t) + " with this config")
        return out

    def check(self, run, task: str) -> None:
        """The features must come from this backbone, cover lora.blocks, and use this config's sampling
        (osrm.k, osrm.include_padding, the seed), data.* and suite: these change what is in the cache."""
        m, cfg, fix = self.manifest, run.cfg, self.fix(task) + " with this config"
        require_same("backbone", run.backbone_identity()["weights"], m.backbone.weights, self.folder,
                     f"{fix} (features were taken on backbone {m.backbone.name!r})")
        if set(cfg.lora.blocks) - set(m.blocks):
            raise OsrmError(f"{self.folder}: features cover lora.blocks={m.blocks!r}, this run needs "
                            f"{cfg.lora.blocks!r} (layer set differs) — {fix}")
        for key in ("k", "include_padding"):
            require_same(f"osrm.{key}", getattr(cfg.osrm, key), getattr(m.sampling, key), self.folder, fix)
        require_same("seed", cfg.seed, m.sampling.seed, self.folder, fix)
        require_same("data", cfg.data.model_dump(), m.data, self.folder, fix)
        require_same("suite", cfg.model_dump(mode="json")["suite"], m.suite, self.folder, fix)

    def check_rank(self, rank: int) -> None:
        """rank < d_in for every layer, or there is no room for a subspace orthogonal to anything."""
        for module, d in sorted(self.manifest.dims.items()):
            if rank >= int(d):
                raise OsrmError(f"lora.rank={rank} is >= d_in={d} of layer {module} ({self.folder}) — lower lora.rank below {d}")

    @cached_property
    def cache(self) -> FeatureCache:
        return FeatureCache(self.folder)
