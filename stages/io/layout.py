"""Where every artifact lives under `workdir` (one place, so stages and dvc.yaml agree)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path

    def features(self, task: str) -> Path:
        return self.root / "features" / task

    def subspace(self, task: str) -> Path:
        return self.root / "subspaces" / task

    def adapter(self, init: str, task: str) -> Path:
        return self.root / "adapters" / init / task

    def checkpoints(self, init: str, task: str) -> Path:
        return self.root / "checkpoints" / init / task

    def merged(self, init: str, method: str) -> Path:
        return self.root / "merged" / init / method

    def evaluation(self, model: str) -> Path:
        """eval/base, eval/individual/<init>, eval/merged/<init>/<method>."""
        if model == "base":
            return self.root / "eval" / "base"
        init, _, what = model.partition("/")
        if what == "individual":
            return self.root / "eval" / "individual" / init
        return self.root / "eval" / "merged" / init / what

    def report(self) -> Path:
        return self.root / "report"
