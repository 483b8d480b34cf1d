"""Where every artifact lives under `workdir` (one place: stages, artifacts and dvc.yaml agree — a test
checks every `outs` path of dvc.yaml against it), and the `--model` grammar that names a scored model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from osrm_core.errors import OsrmError


@dataclass(frozen=True)
class ModelRef:
    """A model that can be scored: the pretrained body ('base'), an arm's individual adapters
    ('<arm>/individual') or one of its merges ('<arm>/<method>'). method: 'individual' or the merge method ('base',
    unread, for the pretrained body)."""

    arm: str | None = None
    method: str = "base"

    @property
    def kind(self) -> str:
        return "base" if self.arm is None else ("individual" if self.method == "individual" else "merge")

    def __str__(self) -> str:
        return "base" if self.arm is None else f"{self.arm}/{self.method}"


def parse_models(texts: list[str], arms: list[str], methods: list[str]) -> list[ModelRef]:
    """The one parser of `--model`: 'base', '<arm>/individual', '<arm>/<method>', '<arm>/merges' (= every
    method of merge.methods), for the arms this config names and any registered merge method; 'all' as the
    arm means every arm ('all/individual'). Order kept, duplicates dropped."""
    from osrm_core.merge import METHODS

    out: list[ModelRef] = []
    for text in texts:
        if text == "base":
            out.append(ModelRef())
            continue
        arm, _, what = text.partition("/")
        if arm not in (*arms, "all") or what not in ("individual", "merges", *METHODS):
            raise OsrmError(f"--model '{text}': expected 'base', '<arm>/individual', '<arm>/merges' or '<arm>/<method>' "
                            f"with arm 'all' or one of {arms} (the config's `arms`) and method one of {sorted(METHODS)}")
        for a in arms if arm == "all" else [arm]:
            out += [ModelRef(a, m) for m in methods] if what == "merges" else [ModelRef(a, what)]
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class Layout:
    """Paths of one seed's artifacts: `<workdir>/<kind>/seed<seed>/...`, so that a stage pooling every seed
    (the report) depends on one folder per kind. The report itself is `<workdir>/report`."""

    workdir: Path
    seed: int

    def _kind(self, kind: str) -> Path:
        return self.workdir / kind / f"seed{self.seed}"

    def features(self, task: str) -> Path:
        return self._kind("features") / task

    def features_staging(self, task: str) -> Path:
        """Where data-parallel ranks assemble a task's features before the atomic rename."""
        return self._kind("features") / f".{task}.partial"

    def subspaces(self, arm: str) -> Path:
        """Every subspace of one arm (a folder that says 'none' for arms that do not start from one)."""
        return self._kind("subspaces") / arm

    def subspace(self, arm: str, task: str) -> Path:
        return self.subspaces(arm) / task

    def adapter(self, arm: str, task: str) -> Path:
        return self._kind("adapters") / arm / task

    def checkpoints(self, arm: str, task: str) -> Path:
        return self._kind("checkpoints") / arm / task

    def merged(self, arm: str, method: str) -> Path:
        return self._kind("merged") / arm / method

    def evaluation(self, model: ModelRef) -> Path:
        """eval/seed<s>/base, eval/seed<s>/individual/<arm>, eval/seed<s>/merged/<arm>/<method>."""
        if model.kind == "base":
            return self._kind("eval") / "base"
        if model.kind == "individual":
            return self._kind("eval") / "individual" / model.arm
        return self._kind("eval") / "merged" / model.arm / model.method

    def selection(self, arm: str) -> Path:
        """Merge parameters chosen on validation for every method of an arm, and their test scores."""
        return self._kind("selection") / arm

    def diagnostics(self, arm: str) -> Path:
        """Interference, energy shares and A drift of an arm's adapters (no forward pass)."""
        return self._kind("diagnostics") / arm

    def diagnostics_summary(self) -> Path:
        """Diagnostics pooled over arms and seeds (outside diagnostics/: DVC needs it apart from its deps)."""
        return self.workdir / "diagnostics_summary"

    def report(self) -> Path:
        return self.workdir / "report"
