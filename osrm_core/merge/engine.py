"""Run a merge method over every target module, one module at a time (memory flat in the number of
layers), for `osrm merge` and `osrm select` alike.

A method sees one module's `ModuleUpdates`; `UpdateSource` builds them from per-task factor readers
(anything with `.factors(module) -> (A r×d_in, B d_out×r)` and `.scale`) plus, when the method needs
them, W0, the tasks' input Grams and diagonal Fishers (docs/merging.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

import torch
from torch import Tensor, nn

from osrm_core.merge.fisher import diag_fisher
from osrm_core.merge.types import MergeMethod, MergeResult, ModuleUpdates


class FactorReader(Protocol):
    scale: float

    def factors(self, module: str) -> tuple[Tensor, Tensor]: ...


@dataclass
class UpdateSource:
    """Module inputs of a merge. factors: task -> reader; base: {module: W0 d_out×d_in};
    grams(task, module) -> G_t (d_in×d_in float32) with counts(task, module) -> its token count n_t;
    fishers(task, module) -> F_t (d_out×d_in float32)."""

    factors: dict[str, FactorReader]
    base: dict[str, Tensor] | None = None
    grams: Callable[[str, str], Tensor] | None = None
    counts: Callable[[str, str], int] | None = None
    fishers: Callable[[str, str], Tensor] | None = None

    def __call__(self, name: str, tasks: list[str] | None = None) -> ModuleUpdates:
        tasks = list(self.factors) if tasks is None else tasks
        A, B = zip(*(self.factors[t].factors(name) for t in tasks))
        return ModuleUpdates(A=list(A), B=list(B), scale=[self.factors[t].scale for t in tasks], name=name,
                             base=self.base[name] if self.base else None,
                             grams=[self.grams(t, name) for t in tasks] if self.grams else None,
                             counts=[self.counts(t, name) for t in tasks] if self.counts else None,
                             fishers=[self.fishers(t, name) for t in tasks] if self.fishers else None)


def merge_modules(method: MergeMethod, params, source: UpdateSource, modules: Iterable[str], seed: int,
                  tasks: list[str] | None = None) -> Iterable[tuple[str, MergeResult]]:
    """(module, result) for each module in order; one generator seeded with `seed` serves the whole
    merge (DARE draws its masks from it module after module, so results depend on the module order)."""
    gen = torch.Generator().manual_seed(seed)
    for name in modules:
        yield name, method.fn(source(name, tasks), params, gen)


@dataclass
class FisherTask:
    """What one task's diagonal Fisher needs: the task kind's model with the task's fine-tuned update folded in
    (W0 + s B A, the gradient of the effective weight as a PEFT LoRA layer would give) and its own head,
    a seeded sample of its training rows as model inputs, whether it is a regression task, and the kind's
    objective (osrm_core.tasks.kinds: None for a classifier)."""

    model: Callable[[], nn.Module]
    batches: Callable[[], Iterable]
    is_regression: bool
    objective: Callable | None = None  # diag_fisher's: None = the classifier's (a generative task's otherwise)


def task_fishers(tasks: dict[str, FisherTask], modules: list[str], labels: str, seed: int, folder: Path,
                 progress=lambda it, desc: it) -> dict[str, Path]:
    """Diagonal Fisher (d_out × d_in float32 per target module) of each task's model, one task at a time,
    each written to folder/fisher-<task>.safetensors so that merges read it back one module at a time:
    peak memory is one model plus one task's Fishers."""
    from safetensors.torch import save_file

    paths = {}
    for task, t in progress(list(tasks.items()), "fisher"):
        fishers = diag_fisher(t.model(), t.batches(), modules, t.is_regression, labels=labels,
                              generator=torch.Generator().manual_seed(seed), objective=t.objective)
        paths[task] = folder / f"fisher-{task}.safetensors"
        save_file(fishers, paths[task])
        del fishers
    return paths


class CachedFactors:
    """A factor reader that reads each module once: sweeps merge the same modules many times."""

    def __init__(self, reader: FactorReader):
        self.reader, self.scale, self._cache = reader, reader.scale, {}

    def factors(self, module: str) -> tuple[Tensor, Tensor]:
        if module not in self._cache:
            self._cache[module] = self.reader.factors(module)
        return self._cache[module]


def merged_deltas(method: MergeMethod, params, source: UpdateSource, modules: list[str], seed: int,
                  tasks: list[str]) -> dict[str, dict[str, Tensor]]:
    """In memory: task -> {module: merged update d_out × d_in} for a merge of `tasks` (the same dict for
    every task unless the method serves each task its own update, as EMR does)."""
    shared: dict[str, Tensor] = {}
    own: dict[str, dict[str, Tensor]] = {t: {} for t in tasks}
    for name, res in merge_modules(method, params, source, modules, seed, tasks):
        shared[name] = res.delta
        for t, d in zip(tasks, res.per_task or []):
            own[t][name] = d
    return {t: (own[t] if method.per_task else shared) for t in tasks}
