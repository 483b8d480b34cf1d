"""Where every artifact lives under `workdir` (one place: stages, artifacts and dvc.yaml agree — a test
checks every `outs` path of dvc.yaml against it), and the `--model` grammar that names a scored model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from osrm_core.errors import OsrmError


@dataclass(frozen=True)
class ModelRef:
    """A model that can be scored: the pretrained body ('base'), an init's individual adapters
    ('<init>/individual') or one of its merges ('<init>/<method>')."""

    init: str | None = None
    what: str = "base"

    @property
    def kind(self) -> str:
        return "base" if self.init is None else ("individual" if self.what == "individual" else "merge")

    def __str__(self) -> str:
        return "base" if self.init is None else f"{self.init}/{self.what}"


def parse_models(texts: list[str], inits: list[str], methods: list[str]) -> list[ModelRef]:
    """The one parser of `--model`: 'base', '<init>/individual', '<init>/<method>', '<init>/merges' (= every
    method of merge.methods), for the inits this config names and any registered merge method. Order kept,
    duplicates dropped."""
    from osrm_core.merge import METHODS

    out: list[ModelRef] = []
    for text in texts:
        if text == "base":
            out.append(ModelRef())
            continue
        init, _, what = text.partition("/")
        if init not in inits or what not in ("individual", "merges", *METHODS):
            raise OsrmError(f"--model '{text}': expected 'base', '<init>/individual', '<init>/merges' or '<init>/<method>' "
                            f"with init one of {inits} and method one of {sorted(METHODS)}")
        out += [ModelRef(init, m) for m in methods] if what == "merges" else [ModelRef(init, what)]
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class Layout:
    root: Path

    def features(self, task: str) -> Path:
        return self.root / "features" / task

    def features_staging(self, task: str) -> Path:
        """Where data-parallel ranks assemble a task's features before the atomic rename."""
        return self.root / "features" / f".{task}.partial"

    def subspace(self, task: str) -> Path:
        return self.root / "subspaces" / task

    def adapter(self, init: str, task: str) -> Path:
        return self.root / "adapters" / init / task

    def checkpoints(self, init: str, task: str) -> Path:
        return self.root / "checkpoints" / init / task

    def merged(self, init: str, method: str) -> Path:
        return self.root / "merged" / init / method

    def evaluation(self, model: ModelRef) -> Path:
        """eval/base, eval/individual/<init>, eval/merged/<init>/<method>."""
        if model.kind == "base":
            return self.root / "eval" / "base"
        if model.kind == "individual":
            return self.root / "eval" / "individual" / model.init
        return self.root / "eval" / "merged" / model.init / model.what

    def report(self) -> Path:
        return self.root / "report"

    def sweep(self, init: str, method: str) -> Path:
        return self.root / "sweeps" / init / method

    def sweep_plots(self) -> Path:
        return self.root / "sweeps" / "plots"
