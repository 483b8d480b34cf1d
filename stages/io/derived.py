"""Adapters made from other adapters (`osrm convert project` / `posthoc`, and arms with `from`: refit, posthoc): the
artifacts they read (the tasks' token Grams, the source adapter and subspace a derived arm starts from), what a
conversion kept, printed (a warning when a task loses most of itself), and how such an adapter is written
(docs/osrm.md, "Convert"). The computing is the core's: the moments and what a conversion keeps (osrm_core.keep),
a derived arm's start (osrm_core.derive); stages/finetune sets it in the model (osrm_core.lora.set_start)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import typer

from osrm_core import keep
from osrm_core.derive import Source, kept
from osrm_core.lora import INITS
from stages.io.adapters import write_lora
from stages.io.artifacts import Features, Subspace, TaskAdapter
from stages.io.artifacts.base import recorded_hash
from stages.io.atomic import atomic_dir

WARN_BELOW = 0.5  # a task that keeps less than half of its own output shift is warned about


class Moments(keep.Moments):
    """keep.Moments of the run's tasks, from the in-sample token Grams of their features artifacts."""

    _open: dict = {}  # per process, by the features' recorded hashes: an arm's tasks read the Grams once, not per task

    def __init__(self, run):
        self.features = Features.open_all(run, run.tasks)
        aliases = next(iter(self.features.values())).cache.aliases  # modules sharing an input share its moments
        super().__init__(self._grams, lambda module: aliases.get(module, module))

    def _grams(self, module: str) -> dict[str, tuple]:
        return {t: (f.cache.gram(module), f.cache.count(module)) for t, f in self.features.items()}

    @classmethod
    def of_run(cls, run) -> "Moments":
        key = tuple((t, recorded_hash(run.layout.features(t))) for t in run.tasks)
        if key not in cls._open:
            cls._open[key] = cls(run)
        return cls._open[key]

    @property
    def upstream(self) -> dict[str, str]:
        return {f"features/{t}": f.content_hash for t, f in self.features.items()}


def announce(task: str, report: dict) -> None:
    """One line per task: what the conversion kept; a warning line, saying what to do, below WARN_BELOW."""
    typer.echo(f"  {task}: keeps {report['own']:.1%} of its output shift on its own tokens, {report['update']:.1%} of "
               f"the update; shift on the other tasks' tokens {report['others']:.1%} of before")
    if report["own"] < WARN_BELOW:
        typer.echo(f"warning: {task} keeps only {report['own']:.1%} of its own output shift (< {WARN_BELOW:.0%}) — re-fit "
                   "it (an arm with init: refit, from: <this arm>) or convert it post hoc (`osrm convert posthoc`, "
                   "keep_share of the own shift kept)", err=True)


def start_of(run, arm: str, task: str) -> tuple[TaskAdapter, Source, Subspace | None]:
    """(the source arm's adapter, the derive.Source a derived arm of init `run.cfg.lora.init` starts from, its subspace)."""
    spec, method = run.cfg.arms[arm], INITS[run.cfg.lora.init]
    src = TaskAdapter.open(run, spec.from_, task)
    sub = Subspace.open(run, arm, task) if method.needs_subspace else None
    moments = Moments.of_run(run)
    source = Source({m: src.peft.factors(m) for m in src.peft.modules}, src.peft.scale, run.cfg.lora.scale,
                    None if sub is None else sub.tensors(), moments.of_task(task), spec.keep_share,
                    run.cfg.osrm.contrast_ridge)
    return src, source, sub


def write_adapter(run, arm: str, task: str, factors: dict, head: dict, template: dict, lora: tuple[int, float, bool],
                  params: dict, upstream: dict, init: str, projection: dict | None = None, **fields) -> Path:
    """A converted / imported / derived adapter -> Layout.adapter(arm, task), sealed as if `osrm finetune` had written
    it; lora = (rank, alpha, rslora) it declares; projection: what projection.json records (kept shares, residuals)."""
    rank, alpha, rslora = lora
    num_labels = run.load_task(task)[0].num_labels
    with atomic_dir(run.layout.adapter(arm, task)) as tmp:
        write_lora(tmp, factors, head, {**template, "base_model_name_or_path": run.spec.source}, rank, alpha, rslora)
        if projection is not None:
            (tmp / "projection.json").write_text(json.dumps(projection, indent=1, sort_keys=True) + "\n")
        TaskAdapter.seal(tmp, {**params, "task": task, "arm": arm, "seed": run.cfg.seed,
                               "lora": {"rank": rank, "alpha": alpha, "rslora": rslora, "blocks": run.cfg.lora.blocks}},
                         upstream=upstream, seed=run.cfg.seed, backbone=run.backbone_identity(), arm=arm, task=task,
                         init=init, num_labels=num_labels, rank=rank, blocks=run.cfg.lora.blocks, targets=sorted(factors),
                         scale=alpha / (rank**0.5 if rslora else rank), **fields)
    return run.layout.adapter(arm, task)


@dataclass(frozen=True)
class Start:
    """Where a derived arm's adapter of one task starts: {module: (A, B)} at the arm's scale, the source's head,
    the upstream hashes (source adapter, subspace, features) and what the conversion kept (osrm_core.keep.report)."""

    factors: dict
    head: dict
    upstream: dict
    report: dict
    source: TaskAdapter


def start(run, task: str) -> Start:
    """The converted update a derived arm (init with a `start` in INITS) of `run.arm` begins at, for `task`."""
    src, source, sub = start_of(run, run.arm, task)
    factors = INITS[run.cfg.lora.init].start(source)
    upstream = {"from": src.content_hash, **({"subspace": sub.content_hash} if sub else {}), **Moments.of_run(run).upstream}
    return Start(factors, src.peft.head(), upstream, kept(source, factors), src)


def write_start(run, task: str) -> Path:
    """A derived arm that does not train (INITS[init].trains False): its start is its adapter."""
    begin, lora = start(run, task), run.cfg.lora
    src = begin.source
    out = write_adapter(run, run.arm, task, begin.factors, begin.head, src.peft.config, (lora.rank, lora.alpha, lora.rslora),
                        {"arm_spec": run.cfg.arms[run.arm].model_dump(mode="json", by_alias=True), "osrm": run.cfg.osrm.model_dump()},
                        begin.upstream, run.cfg.lora.init, {"kept": begin.report},
                        kept=keep.shares(begin.report), source_arm=src.manifest.arm)
    announce(task, begin.report)
    return out
