"""`osrm merge`: combine the per-task adapters of one init, one target module at a time."""

from __future__ import annotations

import json
import tempfile
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path

import torch
import typer
from safetensors import safe_open
from safetensors.torch import save_file

from osrm_core.apply import add_deltas, load_head
from osrm_core.batching import iterate, shuffled
from osrm_core.merge import get_method, parse_params
from osrm_core.merge.fisher import diag_fisher
from osrm_core.merge.lowrank import factored_svd, to_low_rank
from osrm_core.merge.types import ModuleUpdates
from osrm_core.models import load_classifier
from stages.io.adapters import Adapter, individual_delta, open_adapters, write_lora
from stages.io.atomic import atomic_dir
from stages.io.feature_store import FeatureCache
from stages.io.guard import guarded, progress
from stages.io.manifest import read_manifest, write_manifest
from stages.io.options import CONFIG, INIT_REQ, WORKDIR, expand_all
from stages.io.run import Run, open_run
from stages.io.shards import ShardWriter

METHODS_OPT = typer.Option(..., "--method", "-m", help="Merge method (a key of osrm_core.merge.METHODS, e.g. ties). "
                           "Repeat for several, or 'all' = every key of merge.methods: one process then reads the adapters, W0 and Grams once.")


class Inputs:
    """What every method of one init reads, loaded at most once: the checked adapters (and their manifests'
    hashes and backbone), and on demand W0 and the tasks' feature Grams."""

    def __init__(self, run: Run, init: str):
        self.run = run
        self.adapters, self.upstream = open_adapters(run, init)
        self.first = next(iter(self.adapters.values()))
        self.modules = self.first.modules
        self.backbone = read_manifest(self.first.folder, "finetune", "")["backbone"]

    @cached_property
    def base(self) -> dict[str, torch.Tensor]:
        """W0 (d_out x d_in) of the target modules, from one load of the backbone."""
        named = dict(load_classifier(self.run.spec, 2).named_modules())
        return {m: named[m].weight.detach().float().clone() for m in self.modules}

    @cached_property
    def caches(self) -> dict[str, FeatureCache]:
        return {t: FeatureCache(self.run.layout.features(t)) for t in self.run.tasks}


def task_fishers(run: Run, adapters: dict[str, Adapter], modules: list[str], folder: Path) -> dict[str, Path]:
    """Diagonal Fisher (d_out x d_in float32 per target module) of each task's fine-tuned model.

    Task t's model is the backbone with its adapter folded in (W0 + s B A: the gradient of the effective
    weight, as a PEFT LoRA layer would give) and its own head, on a seeded sample of
    `merge.fisher_samples` train rows. One task at a time; each Fisher goes to folder/fisher-<t>.safetensors
    and is read back one module at a time, so peak memory is one model plus one task's Fishers."""
    cfg, tokenizer, paths = run.cfg, run.tokenizer, {}
    for task, adapter in progress(list(adapters.items()), "fisher"):
        spec, data = run.load_task(task)
        ds = data["train"]
        order = shuffled(len(ds), cfg.merge.seed)[: cfg.merge.fisher_samples]
        model = load_classifier(run.spec, spec.num_labels)
        add_deltas(model, individual_delta(adapter))
        load_head(model, adapter.head())
        batches = (x for x, _ in iterate(tokenizer, ds, spec.text_fields, cfg.merge.fisher_batch_size, cfg.data.max_length, order))
        fishers = diag_fisher(model, batches, modules, spec.is_regression, labels=cfg.merge.fisher_labels,
                              generator=torch.Generator().manual_seed(cfg.merge.seed))
        paths[task] = folder / f"fisher-{task}.safetensors"
        save_file(fishers, paths[task])
        del model, fishers
    return paths


def module_inputs(name: str, adapters: dict[str, Adapter], run: Run, base: dict | None, caches: dict | None,
                  fishers: dict | None) -> ModuleUpdates:
    """The T tasks' factors of module `name` (plus Grams / Fishers / W0 when the method needs them)."""
    A, B = zip(*(a.factors(name) for a in adapters.values()))
    return ModuleUpdates(A=list(A), B=list(B), scale=[a.scale for a in adapters.values()], name=name,
                         base=base[name] if base else None,
                         grams=[caches[t].gram(name).float() for t in adapters] if caches else None,
                         fishers=[fishers[t].get_tensor(name).float() for t in adapters] if fishers else None)


def truncate(res, rank: int) -> tuple[tuple[torch.Tensor, torch.Tensor], float]:
    """Best rank-`rank` factors (A: rank x d_in, B: d_out x rank) of a merged update and the relative
    Frobenius error ||delta - B A|| / ||delta||; factored results are never densified."""
    if res.factors is None:
        A, B, err = to_low_rank(res.delta, rank)
        return (A, B), err
    U, S, Vh = factored_svd(res.factors[1], res.factors[0])
    k = min(rank, S.numel())
    total = float(S.square().sum())
    err = (float(S[k:].square().sum()) / total) ** 0.5 if total > 0 else 0.0
    root = S[:k].sqrt()
    A, B = (root[:, None] * Vh[:k]).float(), (U[:, :k] * root[None, :]).float()
    if k < rank:
        A = torch.cat([A, A.new_zeros(rank - k, A.shape[1])])
        B = torch.cat([B, B.new_zeros(B.shape[0], rank - k)], dim=1)
    return (A.contiguous(), B.contiguous()), err


def open_fishers(stack: ExitStack, run: Run, adapters: dict, modules: list[str], m) -> dict | None:
    """Per-task lazy Fisher readers (safetensors handles) when the method needs them, else None."""
    if "fishers" not in m.needs:
        return None
    scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".fisher-", dir=run.layout.root)))
    paths = task_fishers(run, adapters, modules, scratch)
    return {t: stack.enter_context(safe_open(str(p), "pt")) for t, p in paths.items()}


def merge_modules(tmp: Path, names: list[str], inputs, m, params, gen, adapters, low_rank: int | None):
    """Stream: merge one module at a time; dense outputs go to ShardWriter (flushed at 1 GiB).
    Returns (info per module, factors per module or None, truncation errors per module)."""
    dense = ShardWriter(tmp, "delta", metadata={"method": m.name})
    info, factors, errors = {}, {}, {}
    truncating = low_rank is not None and not m.per_task
    for name in progress(names, f"merge {m.name}"):
        res = m.fn(inputs(name), params, gen)
        info[name] = res.info
        if truncating:
            factors[name], errors[name] = truncate(res, low_rank)
            info[name]["low_rank_error"] = errors[name]
        elif m.low_rank:
            factors[name] = res.factors
        else:
            dense.add(name, res.delta)
        for t, d in zip(adapters, res.per_task or []):
            dense.add(f"{t}::{name}", d)
    dense.close()
    return info, (factors or None), errors


@guarded
def main(config: Path = CONFIG, init: str = INIT_REQ, method: list[str] = METHODS_OPT, workdir: Path = WORKDIR) -> None:
    """Merge the adapters of every task (one init) with each METHOD, streaming one module at a time.

    Low-rank methods (weight_average, task_arithmetic, regmean, knots, tsv_m, iso_c) write one PEFT
    adapter of rank sum(r_t); the others write dense deltas (delta-*.safetensors); EMR writes per-task
    deltas `task::module` too. With merge.low_rank = k every (non per-task) result is SVD-truncated to
    one rank-k adapter and the reconstruction error is recorded. Heads are never merged. Every method's
    parameters are checked before anything is written; each method's folder is written atomically.
    """
    run = open_run(config, {"workdir": str(workdir) if workdir else None})
    names = expand_all(method, list(run.cfg.merge.methods))
    methods = {n: get_method(n) for n in names}
    params = {n: parse_params(methods[n], run.cfg.merge.methods.get(n, {}), f"merge.methods.{n}") for n in names}
    shared = Inputs(run, init)
    for n in names:
        merge_one(run, init, methods[n], params[n], shared)


def merge_one(run: Run, init: str, m, params, shared: Inputs) -> None:
    """One method's merge of `init`'s adapters -> <workdir>/merged/<init>/<method> (artifact + manifest)."""
    adapters, modules = shared.adapters, shared.modules
    base = shared.base if "base" in m.needs else None
    caches = shared.caches if "grams" in m.needs else None
    gen = torch.Generator().manual_seed(run.cfg.merge.seed)
    out, low_rank = run.layout.merged(init, m.name), run.cfg.merge.low_rank
    with ExitStack() as stack, atomic_dir(out) as tmp:
        fishers = open_fishers(stack, run, adapters, modules, m)
        inputs = lambda name: module_inputs(name, adapters, run, base, caches, fishers)  # noqa: E731
        info, factors, errors = merge_modules(tmp, modules, inputs, m, params, gen, adapters, low_rank)
        if factors:
            rank = next(iter(factors.values()))[0].shape[0]
            write_lora(tmp, factors, {}, shared.first.config, rank, float(rank))
        (tmp / "info.json").write_text(json.dumps(info, indent=1, sort_keys=True, default=float) + "\n")
        trunc = {"rank": low_rank, "max_error": max(errors.values()), "mean_error": sum(errors.values()) / len(errors)} if errors else None
        write_manifest(tmp, "merge", {"method": m.name, "params": params.model_dump(mode="json"), "init": init,
                       "tasks": run.tasks, "seed": run.cfg.merge.seed, "low_rank": low_rank,
                       **({"fisher": {k: getattr(run.cfg.merge, k) for k in ("fisher_samples", "fisher_batch_size", "fisher_labels")}} if fishers else {})},
                       upstream=shared.upstream, backbone=shared.backbone, method=m.name, init=init,
                       tasks=run.tasks, modules=modules, low_rank=bool(factors), per_task=m.per_task, truncation=trunc)
    note = f", truncated to rank {low_rank} (max rel. error {trunc['max_error']:.3f})" if trunc else ""
    print(f"merged: {out} ({m.name}, {len(adapters)} tasks, {len(modules)} modules{note})")
