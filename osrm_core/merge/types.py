"""Data types shared by every merging method: the per-module inputs, the result, the registry entry.

A merging method works on ONE target linear module at a time (``W0 ∈ R^{d_out×d_in}``) and T tasks.
Task t's LoRA update is ``τ_t = s_t · B_t · A_t`` (docs/osrm.md, docs/merging.md) with ``A_t ∈ R^{r_t×d_in}``,
``B_t ∈ R^{d_out×r_t}``.  All arithmetic is float32 unless a method says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor

from osrm_core.errors import OsrmError

NEEDS = ("grams", "fishers", "base")


@dataclass(eq=False)
class ModuleUpdates:
    """The T task updates of one target linear module, in LoRA factor form.

    A: T tensors, each ``r_t × d_in`` (LoRA down-projection).
    B: T tensors, each ``d_out × r_t`` (LoRA up-projection).
    scale: T floats ``s_t = alpha/r`` (``alpha/sqrt(r)`` for rsLoRA).
    grams: optional T input Grams ``G_t = X_t^T X_t``, each ``d_in × d_in`` (RegMean).
    counts: optional T token counts n_t, the number of rows of ``X_t`` behind ``grams[t]`` (RegMean's
        ``gram_weighting: token_mean`` merges the per-token means ``G_t / n_t``).
    fishers: optional T diagonal Fishers of the module weight, each ``d_out × d_in`` (Fisher merging).
    base: optional ``W0``, ``d_out × d_in``.
    name: the module's name, used only in error messages.
    """

    A: list[Tensor]
    B: list[Tensor]
    scale: list[float]
    grams: list[Tensor] | None = None
    fishers: list[Tensor] | None = None
    base: Tensor | None = None
    name: str = ""
    counts: list[int] | None = None

    def __post_init__(self) -> None:
        self._check_factors()
        d_out, d_in = self.shape
        for what, mats, shape in (("grams", self.grams, (d_in, d_in)), ("fishers", self.fishers, (d_out, d_in))):
            if mats is None:
                continue
            if len(mats) != self.num_tasks:
                self._fail(f"{len(mats)} {what} for {self.num_tasks} tasks")
            for t, m in enumerate(mats):
                if tuple(m.shape) != shape:
                    self._fail(f"{what}[{t}] has shape {tuple(m.shape)}, expected {shape}")
        if self.base is not None and tuple(self.base.shape) != (d_out, d_in):
            self._fail(f"base has shape {tuple(self.base.shape)}, expected {(d_out, d_in)}")
        if self.counts is not None and (len(self.counts) != self.num_tasks or min(self.counts) < 1):
            self._fail(f"counts {list(self.counts)} for {self.num_tasks} tasks", "give one positive token count per task")

    def _fail(self, what: str, fix: str = "the adapters do not match this module (check target_modules)") -> None:
        where = f"module {self.name!r}" if self.name else "merge inputs"
        raise OsrmError(f"{where}: {what}; {fix}.")

    def _check_factors(self) -> None:
        if not self.A or not (len(self.A) == len(self.B) == len(self.scale)):
            counts = f"{len(self.A)}, {len(self.B)}, {len(self.scale)}"
            self._fail(f"need the same non-zero number of A, B and scale (got {counts})")
        d_in, d_out = self.A[0].shape[1], self.B[0].shape[0]
        for t, (a, b) in enumerate(zip(self.A, self.B)):
            if a.dim() != 2 or b.dim() != 2 or a.shape[1] != d_in or b.shape[0] != d_out or a.shape[0] != b.shape[1]:
                self._fail(f"task {t} has A {tuple(a.shape)} and B {tuple(b.shape)}, expected r×{d_in} and {d_out}×r")

    @property
    def num_tasks(self) -> int:
        return len(self.A)

    @property
    def shape(self) -> tuple[int, int]:
        """``(d_out, d_in)`` of the module weight."""
        return self.B[0].shape[0], self.A[0].shape[1]

    def delta(self, t: int) -> Tensor:
        """``τ_t = s_t B_t A_t`` as a float32 ``d_out × d_in`` tensor."""
        return (self.B[t].float() @ self.A[t].float()).mul_(float(self.scale[t]))

    def deltas(self) -> list[Tensor]:
        """All T task updates ``τ_t``, each float32 ``d_out × d_in``."""
        return [self.delta(t) for t in range(self.num_tasks)]

    def stacked_deltas(self) -> Tensor:
        """``T × d_out × d_in`` float32 stack of the τ_t, written in place (one allocation)."""
        out = torch.empty((self.num_tasks, *self.shape), dtype=torch.float32, device=self.A[0].device)
        for t in range(self.num_tasks):
            torch.matmul(self.B[t].float(), self.A[t].float(), out=out[t])
            out[t].mul_(float(self.scale[t]))
        return out

    def concat_factors(self, coef: Sequence[float]) -> tuple[Tensor, Tensor]:
        """Factors of ``Σ_t coef_t τ_t``: ``A = [A_1; …; A_T]`` (R × d_in) and
        ``B = [c_1 s_1 B_1, …, c_T s_T B_T]`` (d_out × R), ``R = Σ r_t``; exact, B @ A is the sum."""
        A = torch.cat([a.float() for a in self.A], dim=0)
        B = torch.cat([b.float() * (float(c) * float(s)) for b, c, s in zip(self.B, coef, self.scale)], dim=1)
        return A, B

    def require(self, *what: str) -> None:
        """Raise OsrmError when an input a method needs (``grams``/``fishers``/``base``) is missing."""
        for w in what:
            if getattr(self, w) is None:
                self._fail(f"this merge method needs per-task {w}", "none were given: enable them in the merge config")

    def task_weights(self, weights: Sequence[float] | None, default: float = 1.0) -> list[float]:
        """Per-task weights ``w_t``: the given list (length T checked) or ``default`` for every task."""
        if weights is None:
            return [default] * self.num_tasks
        if len(weights) != self.num_tasks:
            self._fail(f"weights has {len(weights)} entries for {self.num_tasks} tasks", "give one weight per task")
        return [float(w) for w in weights]


class _LazyDelta:
    """Descriptor for ``MergeResult.delta``: when unset but ``factors`` are, returns ``B @ A`` (cached)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, obj: object, objtype: type | None = None) -> Tensor | None:
        if obj is None:  # dataclass asks for the class-level default
            return None
        value = obj.__dict__.get(self._slot)
        if value is None and obj.__dict__.get("factors") is not None:
            A, B = obj.__dict__["factors"]
            value = B @ A
            obj.__dict__[self._slot] = value
        return value

    def __set__(self, obj: object, value: Tensor | None) -> None:
        obj.__dict__[self._slot] = value


@dataclass(eq=False)
class MergeResult:
    """What a method returns for one module.

    delta: merged dense update ``d_out × d_in``; for low-rank methods it is computed lazily as B @ A.
    factors: ``(A: R × d_in, B: d_out × R)`` with the merged update ``B @ A`` (scales folded in).
    per_task: EMR-style methods: task t is served with ``W0 + per_task[t]``.
    info: diagnostics (kept fraction, rank, reconstruction error, …); JSON-friendly values.
    """

    delta: Tensor | None = _LazyDelta()  # type: ignore[assignment]
    factors: tuple[Tensor, Tensor] | None = None
    per_task: list[Tensor] | None = None
    info: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class MergeMethod:
    """Registry entry: config key, its Params model, the function, what it needs and how the study sweeps it.

    fn(updates, params, generator) -> MergeResult.  ``needs`` ⊆ ("grams", "fishers", "base").
    low_rank: fn returns exact ``factors`` (`osrm merge` writes one PEFT adapter, not dense deltas).
    per_task: fn returns ``per_task`` (task id needed at inference).
    scale: the parameter (its config key) that scales the merged update as λ does — the study's λ = 1 variant
        sets it to 1 and its natural lower bound is 0 (docs/merging.md); None when the method has none.
    scaled_last: the merged update is exactly ``scale × (the update at scale 1)``, bit for bit, so `osrm select`
        merges once per other parameter and multiplies (docs/merging.md, "Identical variants").
    grid: the validation grid `osrm select` scores when merge.sweep names none for the method
        (parameter -> values; empty: nothing to choose).
    """

    name: str
    params: type[BaseModel]
    fn: Callable[[ModuleUpdates, BaseModel, torch.Generator | None], MergeResult]
    paper: str
    needs: tuple[str, ...] = ()
    low_rank: bool = False
    per_task: bool = False
    scale: str | None = None
    scaled_last: bool = False
    grid: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise ValueError(f"{self.name}: unknown needs {sorted(unknown)}")
        keys = {f.alias or n for n, f in self.params.model_fields.items()}
        if self.scale is not None and self.scale not in keys:
            raise ValueError(f"{self.name}: scale {self.scale!r} is not one of its parameters {sorted(keys)}")
        if self.scaled_last and self.scale is None:
            raise ValueError(f"{self.name}: scaled_last needs a scale parameter")
        if set(self.grid) - keys:
            raise ValueError(f"{self.name}: grid keys {sorted(set(self.grid) - keys)} are not parameters")


class MethodParams(BaseModel):
    """Base of every method's Params: unknown keys are errors; ``lambda`` may be given by name or alias."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True, frozen=True)
