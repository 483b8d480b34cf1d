"""`osrm convert`: (a) project adapters or dense fine-tunes into a task's OSRM subspace — one to a folder, or
many (a task -> adapter mapping) into an arm, as if the pipeline had trained them; (b) fold into dense weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import typer
from pydantic import ValidationError

from osrm_core import keep
from osrm_core.apply import add_deltas, load_head
from osrm_core.convert import project_dense, project_factors, projection_residual
from osrm_core.derive import Source, kept, posthoc_start
from osrm_core.errors import OsrmError
from osrm_core.lora import INITS
from osrm_core.models import load_causal_lm, load_classifier
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline.config_sections import ArmConfig
from osrm_pipeline.run import Run, open_run
from stages.io.adapters import Adapter, head_num_labels, individual_delta, write_lora
from stages.io.artifacts import Converted, Folded, Subspace
from stages.io.atomic import atomic_dir
from stages.io.convert_inputs import Backbone, MapEntry, dense_updates, read_map, source_adapter
from stages.io.derived import Moments, announce, write_adapter
from stages.io.guard import guarded, progress
from stages.io.manifest import content_hash
from stages.io.options import CONFIG, SEED, WORKDIR, run_overrides

app = typer.Typer(help="Convert updates: `project` into a task's OSRM subspace (or import them into an arm), "
                  "or `fold` an adapter into dense weights.", no_args_is_help=True)
OUT = typer.Option(..., "--out", "-o", help="Output folder (written atomically; an existing one is replaced only on success).")


@app.command("project")
@guarded
def project(config: Path = CONFIG, task: str = typer.Option(None, "--task", "-t", help="The task (single form)."),
            workdir: Path = WORKDIR,
            out: Path = typer.Option(None, "--out", "-o", help="Output folder of the single form (written atomically)."),
            arm: str = typer.Option(None, "--arm", help="Single form: the arm whose subspace to project into (default: the "
                                    "first arm with subspaces: init osrm or refit). With --map: the arm to write the adapters into."),
            seed: int = SEED,
            adapter: Path = typer.Option(None, help="A PEFT LoRA adapter folder to project."),
            dense: Path = typer.Option(None, help="A dense fine-tuned checkpoint folder (W_ft); dW = W_ft - W0."),
            head_from: Path = typer.Option(None, "--head-from", help="A PEFT adapter folder whose task head to use "
                                           "(for an adapter saved without one)."),
            map_file: Path = typer.Option(None, "--map", help="JSON/YAML mapping task -> adapter folder (or -> {adapter, head}): "
                                          "write each as the arm's adapter of that task (<workdir>/adapters/seed<s>/<arm>/<task>)."),
            no_project: bool = typer.Option(False, "--no-project", help="With --map: import the adapters as they are "
                                            "(any arm, e.g. a plain-LoRA one), without projecting into the subspace.")) -> None:
    """Project an existing LoRA (or dense fine-tune) of TASK into TASK's OSRM subspace, keeping its head; or,
    with --map and --arm, convert (or import) one adapter per task into an arm for merge / select / evaluate."""
    if map_file is not None:
        if task or out or adapter or dense or head_from:
            raise OsrmError("convert project --map: give the adapters in the mapping, not --task/--out/--adapter/--dense/--head-from")
        if arm is None:
            raise OsrmError("convert project --map: pass --arm NAME, the arm to write the adapters into")
        return project_map(config, workdir, seed, arm, map_file, no_project)
    if task is None or out is None or (adapter is None) == (dense is None):
        raise OsrmError("convert project: pass --task, --out and exactly one of --adapter or --dense (or --map and --arm)")
    if no_project:
        raise OsrmError("convert project --no-project: only with --map (importing into an arm)")
    project_one(config, workdir, seed, task, out, arm, adapter, dense, head_from)


def project_one(config: Path, workdir, seed, task: str, out: Path, arm: str | None, adapter: Path | None,
                dense: Path | None, head_from: Path | None) -> None:
    """The single form: one adapter (or dense checkpoint) -> a `Converted` folder at `out`."""
    cfg = open_run(config, run_overrides(workdir, seed)).cfg
    arm = arm or next((a for a, v in cfg.arms.items() if INITS[v.init].needs_subspace), None)
    if arm is None:
        raise OsrmError(f"{config}: no arm with subspaces (init osrm or refit), so none to project into — pass --arm or "
                        "add an arm with init osrm")
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    run.check_task(task)
    sub = Subspace.open(run, arm, task)
    subspace = sub.tensors()
    lora = run.cfg.lora
    if adapter is not None:
        src, head = source_adapter(adapter, head_from, Backbone(run).needs_head(run.load_task(task)[0]))
        missing = sorted(set(src.modules) - set(subspace))
        if missing:
            raise OsrmError(f"{adapter}: module {missing[0]} has no subspace — build it with the adapter's lora.blocks")
        template = src.config
        before = {m: (*src.factors(m), src.scale) for m in src.modules}
        factors, residual = project_factors(src.factors, progress(src.modules, "project"), src.scale, subspace, lora.scale)
    else:
        spec = run.load_task(task)[0]
        deltas, head = dense_updates(run, dense, sorted(subspace), spec)
        head = Adapter(head_from).head() if head_from is not None else head
        template = {"peft_type": "LORA", "target_modules": run.spec.target_suffixes(lora.blocks),
                    "modules_to_save": sorted({k.split(".")[0] for k in head}), "bias": "none", "lora_dropout": 0.0,
                    "task_type": kind_of(spec).peft_task_type, "inference_mode": True, "fan_in_fan_out": False,
                    "init_lora_weights": True}
        before = {m: (torch.eye(d.shape[1]), d, 1.0) for m, d in deltas.items()}  # dW = 1 · dW · I
        factors = {m: project_dense(d, subspace[m], lora.scale) for m, d in deltas.items()}
        residual = {m: projection_residual(d, subspace[m]) for m, d in deltas.items()}
    report = keep.report(Moments.of_run(run).of_task(task), before, {m: (*f, lora.scale) for m, f in factors.items()})
    with atomic_dir(out) as tmp:
        write_lora(tmp, factors, head, template, lora.rank, lora.alpha, lora.rslora)
        (tmp / "projection.json").write_text(json.dumps({"residual": residual, "kept": report}, indent=1, sort_keys=True) + "\n")
        Converted.seal(tmp, {"task": task, "lora": lora.model_dump()},
                       upstream={"subspace": sub.content_hash, "source": content_hash(adapter or dense)},
                       backbone=sub.manifest.backbone, task=task, source=str(adapter or dense), kept=keep.shares(report))
    mean_res = sum(residual.values()) / len(residual)
    print(f"converted: {out} (mean fraction of the update outside the subspace: {mean_res:.3f})")
    announce(task, report)


def checked_map(run: Run, map_file: Path) -> dict[str, tuple[MapEntry, Adapter, dict]]:
    """{task: (entry, adapter, head)} of a --map file, every entry checked against the backbone and task first."""
    entries, backbone, jobs = read_map(map_file, run.tasks), Backbone(run), {}
    for task, e in entries.items():
        spec = run.load_task(task)[0]
        src, head = source_adapter(e.adapter, e.head, backbone.needs_head(spec))
        backbone.check(src, head, spec, f"--map {map_file}: task {task!r}: {e.adapter}")
        jobs[task] = (e, src, head)
    return jobs


def project_map(config: Path, workdir, seed, arm: str, map_file: Path, no_project: bool) -> None:
    """Bulk form: every mapped task's adapter, checked first (nothing is written on a bad entry), then
    projected (or imported) and sealed as the arm's `TaskAdapter`; one line per task says what it keeps."""
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    if not no_project and not INITS[run.cfg.lora.init].needs_subspace:
        raise OsrmError(f"--arm {arm} has init {run.cfg.lora.init}: no subspace to project into — use an arm with init "
                        "osrm, or --no-project to import the adapters as they are")
    jobs = checked_map(run, map_file)
    subs = {} if no_project else {t: Subspace.open(run, arm, t) for t in jobs}
    moments = None if no_project else Moments.of_run(run)
    for task, (e, src, head) in jobs.items():
        _write_task(run, arm, task, e, src, head, subs.get(task), moments)
    print(f"{'imported' if no_project else 'converted'} {len(jobs)} adapters into arm '{arm}' "
          f"({run.layout.adapter(arm, '<task>')}){_missing(run, jobs)}")


def _missing(run: Run, jobs: dict) -> str:
    missing = [t for t in run.tasks if t not in jobs]
    return f"; tasks without an adapter here: {missing}" if missing else ""


def _upstream(e: MapEntry) -> dict[str, str]:
    return {"source": content_hash(e.adapter), **({"head": content_hash(e.head)} if e.head else {})}


def _template(src: Adapter, head: dict) -> dict:
    saved = set(src.config.get("modules_to_save") or []) | {k.split(".")[0] for k in head}  # a --head-from head too
    return {**src.config, "modules_to_save": sorted(saved) or None}  # none: a head-less (CAUSAL_LM) adapter


def _write_task(run: Run, arm: str, task: str, e: MapEntry, src: Adapter, head: dict, sub, moments) -> None:
    """One task's adapter -> Layout.adapter(arm, task), sealed as if `osrm finetune` had written it."""
    lora, upstream = run.cfg.lora, _upstream(e)
    params = {"source": str(e.adapter), "head": str(e.head) if e.head else None, "projected": sub is not None}
    if sub is None:  # imported: the factors as read (per-module scales folded into B), at the adapter's own scale
        write_adapter(run, arm, task, {m: src.factors(m) for m in src.modules}, head, _template(src, head),
                      (src.rank, float(src.config["lora_alpha"]), bool(src.config.get("use_rslora"))), params, upstream, "imported")
        return
    factors, residual = project_factors(src.factors, progress(src.modules, "project"), src.scale, sub.tensors(), lora.scale)
    report = keep.report(moments.of_task(task), {m: (*src.factors(m), src.scale) for m in src.modules},
                         {m: (*f, lora.scale) for m, f in factors.items()})
    write_adapter(run, arm, task, factors, head, _template(src, head), (lora.rank, lora.alpha, lora.rslora), params,
                  {**upstream, "subspace": sub.content_hash, **moments.upstream}, "converted",
                  {"residual": residual, "kept": report}, kept=keep.shares(report))
    announce(task, report)


@app.command("posthoc")
@guarded
def posthoc(config: Path = CONFIG, workdir: Path = WORKDIR, seed: int = SEED,
            arm: str = typer.Option(..., "--arm", help="The arm to write the adapters into (any arm of the config)."),
            map_file: Path = typer.Option(..., "--map", help="JSON/YAML mapping task -> adapter folder (or -> {adapter, head}), "
                                          "as for `convert project --map`."),
            share: float = typer.Option(None, "--share", help=f"{ArmConfig.model_fields['keep_share'].description} "
                                        "Default: the arm's keep_share.")) -> None:
    """Convert one adapter per task post hoc, with no training and the cached features only: drop from each update the
    input directions where the other tasks' tokens dominate the task's own, keeping SHARE of its own output shift
    (docs/osrm.md, "Convert"); written as ARM's adapters, like `convert project --map`."""
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    share = _share(run, arm, share)
    jobs = checked_map(run, map_file)
    moments = Moments.of_run(run)
    done = {}  # every task solved before any is written: a failing one leaves the arm as it was
    for task, (e, src, head) in jobs.items():
        source = Source({m: src.factors(m) for m in src.modules}, src.scale, src.scale, moments=moments.of_task(task),
                        share=share, ridge=run.cfg.osrm.contrast_ridge)
        factors = posthoc_start(source)  # at the source's own scale: B' A' keeps its rank and alpha
        done[task] = factors, kept(source, factors)
    for task, (factors, report) in done.items():
        e, src, head = jobs[task]
        write_adapter(run, arm, task, factors, head, _template(src, head),
                      (src.rank, float(src.config["lora_alpha"]), bool(src.config.get("use_rslora"))),
                      {"source": str(e.adapter), "head": str(e.head) if e.head else None, "keep_share": share,
                       "contrast_ridge": run.cfg.osrm.contrast_ridge}, {**_upstream(e), **moments.upstream}, "posthoc",
                      {"kept": report}, kept=keep.shares(report))
        announce(task, report)
    print(f"converted {len(jobs)} adapters post hoc into arm '{arm}' (keep_share {share}){_missing(run, jobs)}")


def _share(run: Run, arm: str, share: float | None) -> float:
    """--share, checked against ArmConfig.keep_share's own bounds (validate_assignment); else the arm's keep_share."""
    spec = run.cfg.arms[arm].model_copy()
    if share is not None:
        try:
            spec.keep_share = share
        except ValidationError:
            raise OsrmError(f"--share {share}: give the share of the own output shift to keep, in (0, 1]") from None
    return spec.keep_share


@app.command("fold")
@guarded
def fold(config: Path = CONFIG, adapter: Path = typer.Option(..., help="PEFT LoRA adapter folder (with its head)."),
         out: Path = OUT) -> None:
    """Fold an adapter into dense weights: W = W0 + s B A, plus its head; writes a save_pretrained() folder."""
    run = open_run(config)
    src = Adapter(adapter)
    head = src.head()
    causal = src.config.get("task_type") == "CAUSAL_LM"  # a head-less causal-LM adapter folds into the causal LM
    num_labels = 0 if causal else head_num_labels(head, adapter)
    model = load_causal_lm(run.spec) if causal else load_classifier(run.spec, num_labels)
    add_deltas(model, individual_delta(src))
    load_head(model, head)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        Folded.seal(tmp, {"adapter": str(adapter)}, upstream={"adapter": content_hash(adapter)},
                    backbone=run.backbone_identity(), num_labels=num_labels)
    print(f"folded: {out} (dense {type(model).__name__}" + ("" if causal else f", {num_labels} labels") + ")")
