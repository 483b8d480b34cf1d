"""`osrm merge`: combine the per-task adapters of one arm, one target module at a time."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import typer

from osrm_core.export import serving_factors
from osrm_core.merge import get_method, parse_params
from osrm_core.merge.engine import merge_modules
from osrm_core.merge.lowrank import truncate
from osrm_pipeline.run import Run, open_run
from stages.io.adapters import write_lora
from stages.io.artifacts import Merged
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.merge_inputs import MergeInputs
from stages.io.options import ARM, CONFIG, SEED, WORKDIR, expand_all, run_overrides
from stages.io.portable import headless, patch_adapter_config, portable_base, rank_fields
from stages.io.shards import ShardWriter

METHODS_OPT = typer.Option(..., "--method", "-m", help="Merge method (a key of osrm_core.merge.METHODS, e.g. ties). "
                           "Repeat for several, or 'all' = every key of merge.methods: one process then reads the adapters, W0 and Grams once.")


@guarded
def main(config: Path = CONFIG, arm: str = ARM, method: list[str] = METHODS_OPT, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Merge the adapters of every task (one arm) with each METHOD, streaming one module at a time.

    Low-rank methods (weight_average, task_arithmetic, regmean, knots, tsv_m, iso_c) write one PEFT
    adapter of rank sum(r_t); the others write dense deltas (delta-*.safetensors); EMR writes per-task
    deltas `task::module` too. With merge.low_rank = k every (non per-task) result is SVD-truncated to
    one rank-k adapter and the reconstruction error is recorded. Heads are never merged. Every method's
    parameters are checked before anything is written; each method's folder is written atomically.
    """
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    names = expand_all(method, list(run.cfg.merge.methods))
    methods = {n: get_method(n) for n in names}
    params = {n: parse_params(methods[n], run.cfg.merge.methods.get(n, {}), f"merge.methods.{n}") for n in names}
    inputs = MergeInputs(run, arm)
    for n in names:
        merge_one(run, arm, methods[n], params[n], inputs)


def _write_results(tmp: Path, results, m, tasks: list[str], low_rank: int | None):
    """Stream the (module, result) pairs: dense outputs go to a ShardWriter (flushed at 1 GiB), factors
    are kept (or SVD-truncated to `low_rank`). Returns (info per module, factors or None, errors)."""
    dense = ShardWriter(tmp, "delta", metadata={"method": m.name})
    info, factors, errors = {}, {}, {}
    truncating = low_rank is not None and not m.per_task
    for name, res in results:
        info[name] = res.info
        if truncating:
            factors[name], errors[name] = truncate(res, low_rank)
            info[name]["low_rank_error"] = errors[name]
        elif m.low_rank:
            factors[name] = res.factors
        else:
            dense.add(name, res.delta)
        for t, d in zip(tasks, res.per_task or []):
            dense.add(f"{t}::{name}", d)
    dense.close()
    return info, (factors or None), errors


def merge_one(run: Run, arm: str, m, params, inputs: MergeInputs) -> None:
    """One method's merge of `arm`'s adapters -> <workdir>/merged/seed<seed>/<arm>/<method> (artifact + manifest)."""
    cfg, out, low_rank, seed = run.cfg.merge, run.layout.merged(arm, m.name), run.cfg.merge.low_rank, run.cfg.seed
    with ExitStack() as stack, atomic_dir(out) as tmp:
        source = inputs.source(m, stack)
        results = merge_modules(m, params, source, progress(inputs.modules, f"merge {m.name}"), seed)
        info, factors, errors = _write_results(tmp, results, m, list(inputs.adapters), low_rank)
        if factors:
            factors = {n: serving_factors(f, max(1, f[0].shape[0]))[0] for n, f in factors.items()}  # rank 0 -> one zero component
            fields = rank_fields(factors)  # KnOTS/TSV-M/Iso-C: ranks differ per module
            write_lora(tmp, factors, {}, inputs.template, fields["r"], fields["lora_alpha"])
            patch_adapter_config(tmp, **fields, **headless(inputs.template), base_model_name_or_path=portable_base(run.spec))
        (tmp / "info.json").write_text(json.dumps(info, indent=1, sort_keys=True, default=float) + "\n")
        trunc = {"rank": low_rank, "max_error": max(errors.values()), "mean_error": sum(errors.values()) / len(errors)} if errors else None
        fisher = {k: getattr(cfg, k) for k in ("fisher_samples", "fisher_batch_size", "fisher_labels")} if source.fishers else None
        Merged.seal(tmp, {"method": m.name, "params": params.model_dump(mode="json"), "arm": arm, "tasks": run.tasks,
                          "seed": seed, "low_rank": low_rank, **({"fisher": fisher} if fisher else {})},
                    upstream=inputs.upstream, seed=seed, backbone=inputs.backbone, method=m.name, arm=arm,
                    tasks=run.tasks, modules=inputs.modules, low_rank=bool(factors), per_task=m.per_task, truncation=trunc)
    note = f", truncated to rank {low_rank} (max rel. error {trunc['max_error']:.3f})" if trunc else ""
    print(f"merged: {out} ({m.name}, {len(inputs.adapters)} tasks, {len(inputs.modules)} modules{note})")
