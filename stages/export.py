"""`osrm export`: a scored model as files other software loads without this project — per task a standalone
Hugging Face model (W0 + Δ folded in, tokenizer; a classifier: the task head and named labels; a causal LM: greedy
generation settings) and the body update as PEFT LoRA for serving stacks (docs/serving.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import typer

from osrm_core.export import serving_factors, truncation_summary, uniform_rank
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline.layout import ModelRef
from osrm_pipeline.run import Run, open_run
from stages.io.adapters import Adapter, write_lora
from stages.io.artifacts import Merged, TaskAdapter
from stages.io.artifacts.exported import Exported
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.options import CONFIG, SEED, WORKDIR, run_overrides
from stages.io.portable import headless, patch_adapter_config, portable_base, rank_fields
from stages.io.served import body_update, one_model, open_model
from stages.io.tensors import save_file

MODEL = typer.Option(..., "--model", help="What to export: '<arm>/<method>' (a merge) or '<arm>/individual' (each task's own adapter).")
OUT = typer.Option(..., "--out", help="Output folder (replaced atomically): DIR/<task>/ per task, DIR/adapter/, export.json.")
MAX_RANK = typer.Option(64, "--max-rank", min=1, help="Most LoRA components per module in DIR/adapter (serving stacks cap the "
                        "LoRA rank): dense merges are SVD-truncated to it, factor merges above it too; the error goes to export.json.")


@guarded
def main(config: Path = CONFIG, model: str = MODEL, out: Path = OUT, max_rank: int = MAX_RANK, seed: int = SEED,
         workdir: Path = WORKDIR) -> None:
    """Export MODEL: DIR/<task>/ loads with pipeline("text-classification") (AutoModelForSequenceClassification),
    or, for a generative task, pipeline("text-generation") (AutoModelForCausalLM); DIR/adapter/ is the body update
    as one PEFT LoRA adapter (classifier heads in DIR/adapter/heads/), or DIR/adapter/<task>/ per task for per-task
    models (individual, EMR)."""
    run = open_run(config, run_overrides(workdir, seed))
    for task in run.tasks:  # every task's data and backbone checked before anything is written
        run.load_task(task)
    ref = one_model(run, model)
    adapters, merged = open_model(run, ref)
    per_task = ref.kind == "individual" or merged.manifest.per_task
    base = portable_base(run.spec)
    with atomic_dir(out) as tmp:
        for task in progress(run.tasks, f"export {ref}"):
            write_task_model(run, task, body_update(ref, task, adapters, merged), adapters[task].peft.head(), tmp / task, base)
        errors = write_adapters(run, ref, merged, adapters, tmp / "adapter", max_rank, per_task)
        summary = {k: truncation_summary(v, max_rank) for k, v in errors.items()}
        worst = max(s["max_error"] for s in summary.values())
        mean = sum(s["mean_error"] for s in summary.values()) / len(summary)
        (tmp / "export.json").write_text(json.dumps({"model": str(ref), "tasks": run.tasks, "per_task": per_task, "max_rank": max_rank,
                                                     "base_model": base, "adapters": summary}, indent=1, sort_keys=True) + "\n")
        upstream = {t: a.content_hash for t, a in adapters.items()} | ({"merge": merged.content_hash} if merged else {})
        Exported.seal(tmp, {"model": str(ref), "max_rank": max_rank, "tasks": run.tasks}, upstream=upstream, seed=run.cfg.seed,
                      backbone=run.backbone_identity(), model=str(ref), tasks=run.tasks, per_task=per_task, max_rank=max_rank,
                      base_model=base, truncation={"max_error": worst, "mean_error": mean})
    print(f"export {ref}: {len(run.tasks)} task models + LoRA (rank <= {max_rank}, max rel. error {worst:.3g}) -> {out}")


def write_task_model(run: Run, task: str, update: dict, head: dict, folder: Path, base: str) -> None:
    """DIR/<task>/: the task kind's standalone model with W0 + Δ (float32; a classifier's head and labels, a causal
    LM's greedy generation settings) and the tokenizer, truncating at data.max_length as the project scores
    (`truncation=True` reproduces it) and padding on the side the kind's pipelines need."""
    spec, data = run.load_task(task)
    kind = kind_of(spec)
    model = kind.standalone(run.spec, spec, run.tokenizer, data, update, head)
    model.config._name_or_path = base  # not this machine's path
    model.save_pretrained(folder)
    tokenizer = copy.deepcopy(run.tokenizer)
    tokenizer.model_max_length = run.cfg.data.max_length
    tokenizer.padding_side = kind.serving_padding_side
    tokenizer.save_pretrained(folder)


def write_adapters(run: Run, ref: ModelRef, merged: Merged | None, adapters: dict[str, TaskAdapter], folder: Path,
                   max_rank: int, per_task: bool) -> dict[str, dict[str, float]]:
    """Write the LoRA export; returns {adapter ('shared' or task): {module: relative truncation error}}."""
    template = next(iter(adapters.values())).peft.config
    if not per_task:
        factors, errors = _serving(_shared_sources(merged), max_rank)
        _write_lora(folder, factors, {}, template, run, **headless(template))
        for t, a in adapters.items():
            if a.peft.head():  # a generative task's adapter has none
                (folder / "heads").mkdir(exist_ok=True)
                save_file(a.peft.head(), folder / "heads" / f"{t}.safetensors")
        return {"shared": errors}
    out = {}
    for t, a in adapters.items():
        sources = _factor_sources(a.peft) if ref.kind == "individual" else merged.deltas(t)
        factors, out[t] = _serving(sources, max_rank)
        _write_lora(folder / t, factors, a.peft.head(), template, run)
    return out


def _factor_sources(adapter: Adapter) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module: (A r x d_in, s B d_out x r)}: the adapter's factors with its scale folded into B."""
    return {m: (a, adapter.scale * b) for m, (a, b) in ((m, adapter.factors(m)) for m in adapter.modules)}


def _shared_sources(merged: Merged) -> dict:
    """A shared merge's update per module: its factors (factor-space merges) or its dense Δ."""
    if merged.manifest.low_rank:
        return _factor_sources(Adapter(merged.folder))
    return merged.deltas(merged.manifest.tasks[0])  # the same for every task


def _serving(sources: dict, max_rank: int) -> tuple[dict, dict[str, float]]:
    factors, errors = {}, {}
    for m, src in sources.items():
        factors[m], errors[m] = serving_factors(src, max_rank)
    return factors, errors


def _write_lora(folder: Path, factors: dict, head: dict, template: dict, run: Run, **config) -> None:
    """A PEFT adapter of `factors` (scale folded in; zero-padded to one rank, so no rank_pattern) and `head`;
    `config` overrides the task adapter's config (`headless` for the shared adapter)."""
    folder.mkdir(parents=True)
    factors = uniform_rank(factors)
    fields = rank_fields(factors)
    write_lora(folder, factors, head, template, fields["r"], fields["lora_alpha"])
    patch_adapter_config(folder, **fields, **config, base_model_name_or_path=portable_base(run.spec))
