"""Merged-model artifact: `merged/seed<S>/<arm>/<method>/` — one PEFT adapter (factor-space methods) or dense
deltas (`delta-*.safetensors`; EMR adds per-task `task::module` deltas). Heads are never merged: each task
is served with the head of its own adapter of the same arm."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import torch

from osrm_core.errors import OsrmError
from stages.io.adapters import Adapter, individual_delta
from stages.io.artifacts.base import Artifact
from stages.io.manifest import BackboneId, Manifest, require_same
from stages.io.shards import read_sharded


class MergedManifest(Manifest):
    STAGE: ClassVar[str] = "merge"
    backbone: BackboneId
    method: str
    arm: str
    tasks: list[str]
    modules: list[str]
    low_rank: bool
    per_task: bool
    truncation: dict[str, Any] | None = None


class Merged(Artifact[MergedManifest]):
    Manifest = MergedManifest

    @staticmethod
    def path(layout, arm: str, method: str, adapter_hashes: dict[str, str] | None = None):
        return layout.merged(arm, method)

    @staticmethod
    def hint(arm: str, method: str, adapter_hashes=None, *, seed: int) -> str:
        return f"osrm merge --arm {arm} --method {method} --seed {seed}"

    def check(self, run, arm: str, method: str, adapter_hashes: dict[str, str]) -> None:
        """Made for this run's tasks, from the adapters whose hashes are given (the ones on disk now)."""
        m, fix = self.manifest, self.fix(arm, method)
        require_same("tasks", run.tasks, m.tasks, self.folder, fix)
        stale = sorted(t for t in m.tasks if m.upstream.get(t) != adapter_hashes.get(t))
        if stale:
            raise OsrmError(f"{self.folder}: merged from older adapters of task '{stale[0]}' (retrained since) — {fix}")

    @cached_property
    def _deltas(self) -> dict[str, torch.Tensor]:
        if self.manifest.low_rank:
            return individual_delta(Adapter(self.folder))
        return read_sharded(self.folder, "delta")

    def deltas(self, task: str) -> dict[str, torch.Tensor]:
        """{module: merged update (d_out x d_in)} serving `task` (per-task methods differ per task)."""
        if self.manifest.per_task:
            return {k.split("::", 1)[1]: v for k, v in self._deltas.items() if k.startswith(f"{task}::")}
        return {k: v for k, v in self._deltas.items() if "::" not in k}
