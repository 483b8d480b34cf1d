"""Artifacts nothing downstream opens with checks: the report, sweeps, and `osrm convert` outputs."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from stages.io.artifacts.base import Artifact
from stages.io.manifest import BackboneId, Manifest


class ReportManifest(Manifest):
    STAGE: ClassVar[str] = "report"


class Report(Artifact[ReportManifest]):
    Manifest = ReportManifest


class SweepManifest(Manifest):
    STAGE: ClassVar[str] = "sweep"
    arm: str
    method: str


class Sweep(Artifact[SweepManifest]):
    """`sweeps/<arm>/<method>/results.json`: merge-parameter grid and number-of-tasks curve."""

    Manifest = SweepManifest
    RESULTS: ClassVar[str] = "results.json"

    @staticmethod
    def hint(arm: str, method: str) -> str:
        return f"osrm sweep run --arm {arm} --method {method}"

    @classmethod
    def open(cls, run, arm: str, method: str) -> "Sweep":
        return cls.read(run.layout.sweep(arm, method), cls.hint(arm, method))

    def results(self) -> dict[str, Any]:
        return json.loads((self.folder / self.RESULTS).read_text())


class SweepPlotManifest(Manifest):
    STAGE: ClassVar[str] = "sweep-plot"


class SweepPlots(Artifact[SweepPlotManifest]):
    Manifest = SweepPlotManifest


class ConvertManifest(Manifest):
    STAGE: ClassVar[str] = "convert"
    backbone: BackboneId
    task: str
    source: str


class Converted(Artifact[ConvertManifest]):
    """`osrm convert project` output: an adapter moved into a task's OSRM subspace (head kept)."""

    Manifest = ConvertManifest


class FoldManifest(Manifest):
    STAGE: ClassVar[str] = "convert-fold"
    backbone: BackboneId
    num_labels: int


class Folded(Artifact[FoldManifest]):
    """`osrm convert fold` output: a save_pretrained() folder with the adapter folded into dense weights."""

    Manifest = FoldManifest
