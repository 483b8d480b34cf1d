"""Adapter artifact: `adapters/seed<S>/<arm>/<task>/`, a PEFT LoRA adapter with the task head (modules_to_save)."""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

from osrm_core.errors import OsrmError
from stages.io.adapters import Adapter
from stages.io.artifacts.base import Artifact, recorded_hash
from stages.io.manifest import BackboneId, Manifest, require_same


class AdapterManifest(Manifest):
    STAGE: ClassVar[str] = "finetune"
    backbone: BackboneId
    arm: str
    task: str
    init: str
    num_labels: int
    rank: int
    blocks: str
    targets: list[str] = []
    scale: float | None = None
    a0_norm: float | None = None  # mean over modules of ||A_0||_F (lora.a_norm); absent before it was recorded
    source_arm: str | None = None  # the arm whose adapter it starts from (init refit / posthoc; upstream "from")
    kept: dict[str, float] | None = None  # a conversion's shares kept: update, own, others (osrm_core.keep.shares)


class TaskAdapter(Artifact[AdapterManifest]):
    Manifest = AdapterManifest

    @staticmethod
    def path(layout, arm: str, task: str):
        return layout.adapter(arm, task)

    @staticmethod
    def hint(arm: str, task: str, seed: int) -> str:
        return f"osrm finetune --task {task} --arm {arm} --seed {seed}"

    @classmethod
    def open_all(cls, run, arm: str) -> dict[str, "TaskAdapter"]:
        """Every task's adapter of `arm`, checked, and mergeable with each other (same rank and targets)."""
        arts = {t: cls.open(run, arm, t) for t in run.tasks}
        check_compatible({t: a.peft for t, a in arts.items()})
        return arts

    def check(self, run, arm: str, task: str) -> None:
        """Trained on this run's backbone (merged updates are added to ITS W0), for this task and arm, and
        from the subspace on disk now when it started from one."""
        m = self.manifest
        require_same("backbone", run.backbone_identity()["weights"], m.backbone.weights, self.folder,
                     f"fine-tune every task on the same backbone as the config ('{run.spec.name}')")
        require_same("task", task, m.task, self.folder, "check the path")
        require_same("arm", arm, m.arm, self.folder, "check the path")
        sub = m.upstream.get("subspace")
        if sub is not None and recorded_hash(run.layout.subspace(arm, task)) not in (None, sub):
            raise OsrmError(f"{self.folder}: trained from an older subspace of '{task}' (it was rebuilt since) — {self.fix(arm, task)}")
        if m.source_arm is not None and recorded_hash(run.layout.adapter(m.source_arm, task)) not in (None, m.upstream.get("from")):
            raise OsrmError(f"{self.folder}: made from an older adapter of arm '{m.source_arm}' for '{task}' (it was "
                            f"rebuilt since) — {self.fix(arm, task)}")

    @cached_property
    def peft(self) -> Adapter:
        """The PEFT reader (factors per module, scale, head), tensors read lazily."""
        return Adapter(self.folder)


def check_compatible(adapters: dict[str, Adapter]) -> None:
    """Adapters in one merge must share target modules and base model (one-line error otherwise); ranks may
    differ per task: every merge method takes r_t."""
    names = list(adapters)
    ref = adapters[names[0]]
    for n in names[1:]:
        a = adapters[n]
        if a.modules != ref.modules:
            raise OsrmError(f"{a.folder}: targets differ from {ref.folder} — fine-tune every task with the same lora.blocks")
        if a.base_id and ref.base_id and a.base_id != ref.base_id:
            raise OsrmError(f"{a.folder}: trained on another base model than {ref.folder} — fine-tune every task on the same backbone")
