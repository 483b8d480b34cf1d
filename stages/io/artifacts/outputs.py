"""Artifacts read by the report or by nobody: merge-parameter selections, diagnostics, the report, `osrm convert` outputs."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import torch

from stages.io.artifacts.base import Artifact
from stages.io.manifest import BackboneId, Manifest, require_same


class ReportManifest(Manifest):
    STAGE: ClassVar[str] = "report"


class Report(Artifact[ReportManifest]):
    Manifest = ReportManifest


class SelectionManifest(Manifest):
    STAGE: ClassVar[str] = "select"
    arm: str
    methods: list[str]
    tasks: list[str]
    variants: list[str]
    validation_rows: dict[str, int]
    test_rows: dict[str, int]


class Selection(Artifact[SelectionManifest]):
    """`selection/seed<s>/<arm>/`: per merge method the validation grid and choice (results.json) and the test
    scores and logits (`logits-<variant>.safetensors`, keys `method::task`, rows in dataset order) of the
    chosen, default and λ = 1 variants."""

    Manifest = SelectionManifest
    RESULTS: ClassVar[str] = "results.json"

    @staticmethod
    def path(layout, arm: str):
        return layout.selection(arm)

    @staticmethod
    def hint(arm: str, seed: int) -> str:
        return f"osrm select --arm {arm} --seed {seed}"

    def check(self, run, arm: str) -> None:
        """Made for this run's tasks and merge methods."""
        require_same("tasks", run.tasks, self.manifest.tasks, self.folder, self.fix(arm))
        require_same("methods", list(run.cfg.merge.methods), self.manifest.methods, self.folder, self.fix(arm))

    def results(self) -> dict[str, Any]:
        return json.loads((self.folder / self.RESULTS).read_text())

    def logits(self, variant: str) -> dict[str, torch.Tensor]:
        """`method::task` -> test logits (n x num_labels) of that variant."""
        from safetensors.torch import load_file

        return load_file(self.folder / f"logits-{variant}.safetensors")


class ConvertManifest(Manifest):
    STAGE: ClassVar[str] = "convert"
    backbone: BackboneId
    task: str
    source: str
    kept: dict[str, float] | None = None  # shares kept: update, own, others (osrm_core.keep.shares)


class Converted(Artifact[ConvertManifest]):
    """`osrm convert project` output: an adapter moved into a task's OSRM subspace (head kept)."""

    Manifest = ConvertManifest


class FoldManifest(Manifest):
    STAGE: ClassVar[str] = "convert-fold"
    backbone: BackboneId
    num_labels: int  # 0: a causal LM folded from a head-less (generative) adapter


class Folded(Artifact[FoldManifest]):
    """`osrm convert fold` output: a save_pretrained() folder with the adapter folded into dense weights."""

    Manifest = FoldManifest


class DiagnosticsManifest(Manifest):
    STAGE: ClassVar[str] = "diagnose"
    backbone: BackboneId
    arm: str
    init: str
    tasks: list[str]
    modules: list[str]


class Diagnostics(Artifact[DiagnosticsManifest]):
    """`diagnostics/seed<s>/<arm>/`: interference, energy shares and A drift of an arm's adapters (docs/diagnostics.md)."""

    Manifest = DiagnosticsManifest
    RESULTS: ClassVar[str] = "diagnostics.json"
    SUMMARY: ClassVar[str] = "summary.json"

    @staticmethod
    def path(layout, arm: str):
        return layout.diagnostics(arm)

    @staticmethod
    def hint(arm: str, seed: int) -> str:
        return f"osrm diagnose run --arm {arm} --seed {seed}"

    def results(self) -> dict[str, Any]:
        """diagnostics.json: {"interference": Interference.as_dict(), "energy": {"trained", "init"}} on held-out Grams,
        "in_sample": the same two on the training sample's Grams, "grams": which rows each used, "drift", ...}."""
        return json.loads((self.folder / self.RESULTS).read_text())

    def summary(self) -> dict[str, float]:
        """summary.json: the scalars only."""
        return json.loads((self.folder / self.SUMMARY).read_text())


class DiagnosticsSummaryManifest(Manifest):
    STAGE: ClassVar[str] = "diagnose-summary"
    arms: list[str]
    seeds: list[int]


class DiagnosticsSummary(Artifact[DiagnosticsSummaryManifest]):
    """`diagnostics_summary/`: every arm's diagnostics pooled over seeds (summary.json/.md, heatmaps.png, per_layer.png)."""

    Manifest = DiagnosticsSummaryManifest
