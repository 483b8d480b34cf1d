"""Feature cache artifact: `features/seed<S>/<task>/features.zarr` (per target layer sample-mean rows, token Gram, count; and
the token Gram and count of held-out validation rows, for `osrm diagnose`)."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from osrm_core.errors import OsrmError
from stages.io.artifacts.base import Artifact
from stages.io.feature_store import FeatureCache
from stages.io.manifest import BackboneId, Manifest, require_same


class Sampling(BaseModel):
    """The settings that decide what goes into the cache: k rows asked for (the largest osrm.k), drawn with `seed`,
    and whether padding counts."""

    model_config = ConfigDict(extra="forbid")
    k: int
    include_padding: bool
    seed: int


class HeldOut(BaseModel):
    """Which held-out rows' token Grams the cache also holds: `rows` rows of `split` (docs/diagnostics.md)."""

    model_config = ConfigDict(extra="forbid")
    split: str
    rows: int


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
    # the rows sampled: sampling.k, or every training row of a task with fewer ("k" in manifests written before)
    rows: int = Field(validation_alias=AliasChoices("rows", "k"))
    world: int
    heldout: HeldOut | None = None  # None: written before held-out Grams existed (diagnose asks to re-extract)


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
        (feature_k: the largest osrm.k of the config and its arms, osrm.include_padding, the seed), data.* and
        suite: these change what is in the cache. An arm's own osrm.k picks a prefix of it (sample)."""
        m, cfg, fix = self.manifest, run.cfg, self.fix(task) + " with this config"
        require_same("backbone", run.backbone_identity()["weights"], m.backbone.weights, self.folder,
                     f"{fix} (features were taken on backbone {m.backbone.name!r})")
        if set(cfg.lora.blocks) - set(m.blocks):
            raise OsrmError(f"{self.folder}: features cover lora.blocks={m.blocks!r}, this run needs "
                            f"{cfg.lora.blocks!r} (layer set differs) — {fix}")
        require_same("osrm.k (the largest of the config and its arms)", cfg.feature_k, m.sampling.k, self.folder, fix)
        require_same("osrm.include_padding", cfg.osrm.include_padding, m.sampling.include_padding, self.folder, fix)
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

    @property
    def heldout(self):
        """Token Grams and counts of the held-out (validation) rows: feature_store.HeldOutGrams."""
        if self.manifest.heldout is None:
            raise OsrmError(f"{self.folder}: these features predate held-out Grams — {self.fix(self.manifest.task)}")
        return self.cache.heldout

    def sample(self, k: int):
        """The features of the first k sampled rows (an arm's osrm.k; the whole cache when k is the extracted k)."""
        if k > self.manifest.sampling.k:
            raise OsrmError(f"{self.folder}: features were extracted at osrm.k={self.manifest.sampling.k}, this arm needs "
                            f"k={k} — rerun `osrm extract-features` (it samples the largest osrm.k of the config and its arms)")
        return self.cache.prefix(k)
