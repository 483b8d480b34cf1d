"""What the merges of one arm read, opened once per process (`osrm merge --method all`, `osrm select`):
the checked adapters, and on demand W0, the tasks' checked feature Grams and the tasks' Fishers (computed by
osrm_pipeline/fisher.py into a scratch folder, read back here one module at a time)."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path

import torch

from osrm_core.merge.engine import UpdateSource
from osrm_core.merge.types import MergeMethod
from osrm_core.models import load_classifier
from osrm_pipeline.fisher import fisher_files
from stages.io.adapters import individual_delta
from stages.io.artifacts import Features, TaskAdapter
from stages.io.guard import progress


class MergeInputs:
    def __init__(self, run, arm: str):
        self.run, self.arm = run, arm
        self.arts = TaskAdapter.open_all(run, arm)
        self.adapters = {t: a.peft for t, a in self.arts.items()}
        self.upstream = {t: a.content_hash for t, a in self.arts.items()}
        first = next(iter(self.arts.values()))
        self.modules, self.backbone, self.template = first.peft.modules, first.manifest.backbone, first.peft.config

    @cached_property
    def base(self) -> dict[str, torch.Tensor]:
        """W0 (d_out x d_in) of the target modules, from one load of the backbone."""
        named = dict(load_classifier(self.run.spec, 2).named_modules())
        return {m: named[m].weight.detach().float().clone() for m in self.modules}

    @cached_property
    def features(self) -> dict[str, Features]:
        """Every task's feature cache, checked against this run (RegMean's Grams)."""
        return Features.open_all(self.run, self.run.tasks)

    def gram(self, task: str, module: str) -> torch.Tensor:
        return self.features[task].cache.gram(module).float()

    def count(self, task: str, module: str) -> int:
        return self.features[task].cache.count(module)

    def source(self, method: MergeMethod, stack: ExitStack) -> UpdateSource:
        """The module inputs `method` needs; Fishers are computed into a scratch folder closed with `stack`."""
        fishers = None
        if "fishers" in method.needs:
            from safetensors import safe_open

            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".fisher-", dir=self.run.layout.workdir)))
            updates = {t: lambda a=a: (individual_delta(a), a.head()) for t, a in self.adapters.items()}
            paths = fisher_files(self.run, updates, self.modules, scratch, progress)
            handles = {t: stack.enter_context(safe_open(str(p), "pt")) for t, p in paths.items()}
            fishers = lambda t, name: handles[t].get_tensor(name).float()  # noqa: E731
        return UpdateSource(self.adapters, base=self.base if "base" in method.needs else None,
                            grams=self.gram if "grams" in method.needs else None,
                            counts=self.count if "grams" in method.needs else None, fishers=fishers)
