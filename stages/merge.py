"""`osrm merge`: combine the per-task adapters of one init, one target module at a time."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import typer
from pydantic import ValidationError

from osrm_core.errors import OsrmError
from osrm_core.merge import get_method
from osrm_core.merge.types import ModuleUpdates
from osrm_core.models import load_classifier
from stages.io.adapters import Adapter, check_compatible, write_lora
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
    adapters, upstream, ref = {}, {}, None
    for t in run.tasks:
        folder = run.layout.adapter(init, t)
        m = read_manifest(folder, "finetune", f"osrm finetune --task {t} --init {init}")
        ref = ref or m
        require_same("backbone", ref["backbone"]["weights"], m["backbone"]["weights"], folder, "fine-tune every task on the same backbone")
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


def module_inputs(name: str, adapters: dict[str, Adapter], method, run: Run, base: dict | None, caches: dict | None):
    A, B = zip(*(a.factors(name) for a in adapters.values()))
    return ModuleUpdates(A=list(A), B=list(B), scale=[a.scale for a in adapters.values()], name=name,
                         base=base[name] if base else None,
                         grams=[caches[t].gram(name).float() for t in adapters] if caches else None)


@guarded
def main(config: Path = CONFIG, init: str = INIT_REQ, method: str = METHOD, workdir: Path = WORKDIR) -> None:
    """Merge the adapters of every task (one init) with METHOD, streaming one module at a time.

    Low-rank methods (weight_average, task_arithmetic) write one PEFT adapter of rank sum(r_t);
    the others write dense deltas (delta-*.safetensors); EMR writes per-task deltas too. Heads are
    never merged: each task keeps its own at evaluation.
    """
    run = open_run(config, {"workdir": str(workdir) if workdir else None})
    m = get_method(method)
    params = method_params(m, run, method)
    if "fishers" in m.needs:
        raise OsrmError(f"merge method '{method}' needs Fisher information, computed by `osrm merge` only through stages.fisher — not wired yet")
    adapters, upstream = open_adapters(run, init)
    first = next(iter(adapters.values()))
    modules = first.modules
    base = base_weights(run, modules) if "base" in m.needs else None
    caches = {t: FeatureCache(run.layout.features(t)) for t in run.tasks} if "grams" in m.needs else None
    gen = torch.Generator().manual_seed(run.cfg.merge.seed)
    out = run.layout.merged(init, method)
    info = {}
    with atomic_dir(out) as tmp:
        dense = ShardWriter(tmp, "delta", metadata={"method": method, "init": init})
        factors = {}
        for name in progress(modules, f"merge {init}/{method}"):
            res = m.fn(module_inputs(name, adapters, m, run, base, caches), params, gen)
            info[name] = res.info
            if m.low_rank:
                factors[name] = res.factors
            else:
                dense.add(name, res.delta)
            for t, d in zip(adapters, res.per_task or []):
                dense.add(f"{t}::{name}", d)
        dense.close()
        if m.low_rank:
            rank = next(iter(factors.values()))[0].shape[0]
            write_lora(tmp, {k: (a, b) for k, (a, b) in factors.items()}, {}, first.config, rank, float(rank))
        (tmp / "info.json").write_text(json.dumps(info, indent=1, sort_keys=True, default=float) + "\n")
        write_manifest(tmp, "merge", {"method": method, "params": params.model_dump(mode="json"), "init": init,
                       "tasks": run.tasks, "seed": run.cfg.merge.seed}, upstream=upstream,
                       backbone=read_manifest(first.folder, "finetune", "")["backbone"], method=method, init=init,
                       tasks=run.tasks, modules=modules, low_rank=m.low_rank, per_task=m.per_task)
    print(f"merged: {out} ({method}, {len(adapters)} tasks, {len(modules)} modules)")
