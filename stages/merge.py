"""`osrm merge`: combine the per-task adapters of one init, one target module at a time."""

from __future__ import annotations

import json
import tempfile
from contextlib import ExitStack
from pathlib import Path

import torch
import typer
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import save_file

from osrm_core.errors import OsrmError
from osrm_core.apply import add_deltas, load_head
from osrm_core.batching import iterate, shuffled
from osrm_core.merge import get_method
from osrm_core.merge.fisher import diag_fisher
from osrm_core.merge.lowrank import factored_svd, to_low_rank
from osrm_core.merge.types import ModuleUpdates
from osrm_core.models import load_classifier, load_tokenizer
from stages.io.adapters import Adapter, check_compatible, individual_delta, write_lora
from stages.io.atomic import atomic_dir
from stages.io.feature_store import FeatureCache
from stages.io.guard import guarded, progress
from stages.io.manifest import read_manifest, require_same, write_manifest
from stages.io.options import CONFIG, WORKDIR
from stages.io.run import Run, open_run
from stages.io.shards import ShardWriter

METHOD = typer.Option(..., "--method", "-m", help="Merge method (a key of osrm_core.merge.METHODS, e.g. task_arithmetic, ties).")
INIT_REQ = typer.Option(..., "--init", help="Which adapters to merge: the 'gaussian' or the 'osrm' ones.")


def open_adapters(run: Run, init: str) -> tuple[dict[str, Adapter], dict[str, str]]:
    """Every task's adapter of `init`, checked: same backbone, rank and targets."""
    adapters, upstream = {}, {}
    weights = run.backbone_identity()["weights"]  # merged updates are added to THIS backbone's W0
    for t in run.tasks:
        folder = run.layout.adapter(init, t)
        m = read_manifest(folder, "finetune", f"osrm finetune --task {t} --init {init}")
        require_same("backbone", weights, m["backbone"]["weights"], folder,
                     f"fine-tune every task on the same backbone as the config ('{run.spec.name}')")
        adapters[t], upstream[t] = Adapter(folder), m["content_hash"]
    check_compatible(adapters)
    return adapters, upstream


def base_weights(run: Run, modules: list[str]) -> dict[str, torch.Tensor]:
    """W0 (d_out x d_in) of the target modules, from one load of the backbone."""
    model = load_classifier(run.spec, 2)
    named = dict(model.named_modules())
    return {m: named[m].weight.detach().float().clone() for m in modules}


def method_params(method, run: Run, name: str):
    try:
        return method.params.model_validate(run.cfg.merge.methods.get(name, {}))
    except ValidationError as err:
        first = err.errors()[0]
        raise OsrmError(f"merge.methods.{name}.{'.'.join(map(str, first['loc']))}: {first['msg']} — fix that parameter") from None


def task_fishers(run: Run, adapters: dict[str, Adapter], modules: list[str], folder: Path) -> dict[str, Path]:
    """Diagonal Fisher (d_out x d_in float32 per target module) of each task's fine-tuned model.

    Task t's model is the backbone with its adapter folded in (W0 + s B A: the gradient of the effective
    weight, as a PEFT LoRA layer would give) and its own head, on a seeded sample of
    `merge.fisher_samples` train rows. One task at a time; each Fisher goes to folder/fisher-<t>.safetensors
    and is read back one module at a time, so peak memory is one model plus one task's Fishers."""
    cfg, tokenizer, paths = run.cfg, load_tokenizer(run.spec), {}
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
def main(config: Path = CONFIG, init: str = INIT_REQ, method: str = METHOD, workdir: Path = WORKDIR) -> None:
    """Merge the adapters of every task (one init) with METHOD, streaming one module at a time.

    Low-rank methods (weight_average, task_arithmetic, regmean, knots, tsv_m, iso_c) write one PEFT
    adapter of rank sum(r_t); the others write dense deltas (delta-*.safetensors); EMR writes per-task
    deltas `task::module` too. With merge.low_rank = k every (non per-task) result is SVD-truncated to
    one rank-k adapter and the reconstruction error is recorded. Heads are never merged.
    """
    run = open_run(config, {"workdir": str(workdir) if workdir else None})
    m = get_method(method)
    params = method_params(m, run, method)
    adapters, upstream = open_adapters(run, init)
    first = next(iter(adapters.values()))
    modules = first.modules
    base = base_weights(run, modules) if "base" in m.needs else None
    caches = {t: FeatureCache(run.layout.features(t)) for t in run.tasks} if "grams" in m.needs else None
    gen = torch.Generator().manual_seed(run.cfg.merge.seed)
    out, low_rank = run.layout.merged(init, method), run.cfg.merge.low_rank
    with ExitStack() as stack, atomic_dir(out) as tmp:
        fishers = open_fishers(stack, run, adapters, modules, m)
        inputs = lambda name: module_inputs(name, adapters, run, base, caches, fishers)  # noqa: E731
        info, factors, errors = merge_modules(tmp, modules, inputs, m, params, gen, adapters, low_rank)
        if factors:
            rank = next(iter(factors.values()))[0].shape[0]
            write_lora(tmp, factors, {}, first.config, rank, float(rank))
        (tmp / "info.json").write_text(json.dumps(info, indent=1, sort_keys=True, default=float) + "\n")
        trunc = {"rank": low_rank, "max_error": max(errors.values()), "mean_error": sum(errors.values()) / len(errors)} if errors else None
        write_manifest(tmp, "merge", {"method": method, "params": params.model_dump(mode="json"), "init": init,
                       "tasks": run.tasks, "seed": run.cfg.merge.seed, "low_rank": low_rank,
                       **({"fisher": {k: getattr(run.cfg.merge, k) for k in ("fisher_samples", "fisher_batch_size", "fisher_labels")}} if fishers else {})},
                       upstream=upstream, backbone=read_manifest(first.folder, "finetune", "")["backbone"], method=method, init=init,
                       tasks=run.tasks, modules=modules, low_rank=bool(factors), per_task=m.per_task, truncation=trunc)
    note = f", truncated to rank {low_rank} (max rel. error {trunc['max_error']:.3f})" if trunc else ""
    print(f"merged: {out} ({method}, {len(adapters)} tasks, {len(modules)} modules{note})")
