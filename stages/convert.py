"""`osrm convert`: (a) project adapters or dense fine-tunes into a task's OSRM subspace — one to a folder, or
many (a task -> adapter mapping) into an arm, as if the pipeline had trained them; (b) fold into dense weights."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from osrm_core.apply import add_deltas, load_head
from osrm_core.convert import project_dense, projection_residual
from osrm_core.errors import OsrmError
from osrm_core.models import load_classifier
from stages.io.adapters import Adapter, head_num_labels, individual_delta, write_lora
from stages.io.convert_inputs import Backbone, MapEntry, dense_updates, project_adapter, read_map, source_adapter
from stages.io.artifacts import Converted, Folded, Subspace, TaskAdapter
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded
from stages.io.manifest import content_hash
from stages.io.options import CONFIG, SEED, WORKDIR, run_overrides
from stages.io.run import Run, open_run

app = typer.Typer(help="Convert updates: `project` into a task's OSRM subspace (or import them into an arm), "
                  "or `fold` an adapter into dense weights.", no_args_is_help=True)
OUT = typer.Option(..., "--out", "-o", help="Output folder (written atomically; an existing one is replaced only on success).")


@app.command("project")
@guarded
def project(config: Path = CONFIG, task: str = typer.Option(None, "--task", "-t", help="The task (single form)."),
            workdir: Path = WORKDIR,
            out: Path = typer.Option(None, "--out", "-o", help="Output folder of the single form (written atomically)."),
            arm: str = typer.Option(None, "--arm", help="Single form: the arm whose subspace to project into (default: the "
                                    "first arm with init osrm). With --map: the arm to write the adapters into."),
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
    arm = arm or next((a for a, v in cfg.arms.items() if v.init == "osrm"), None)
    if arm is None:
        raise OsrmError(f"{config}: no arm with init osrm, so no subspace to project into — pass --arm or add such an arm")
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    run.check_task(task)
    sub = Subspace.open(run, arm, task)
    subspace = sub.tensors()
    lora = run.cfg.lora
    if adapter is not None:
        src, head = source_adapter(adapter, head_from)
        missing = sorted(set(src.modules) - set(subspace))
        if missing:
            raise OsrmError(f"{adapter}: module {missing[0]} has no subspace — build it with the adapter's lora.blocks")
        template = src.config
        factors, residual = project_adapter(src, subspace, lora.scale)
    else:
        deltas, head = dense_updates(run, dense, sorted(subspace))
        head = Adapter(head_from).head() if head_from is not None else head
        template = {"peft_type": "LORA", "target_modules": run.spec.target_suffixes(lora.blocks),
                    "modules_to_save": sorted({k.split(".")[0] for k in head}), "bias": "none", "lora_dropout": 0.0,
                    "task_type": None, "inference_mode": True, "fan_in_fan_out": False, "init_lora_weights": True}
        factors = {m: project_dense(d, subspace[m], lora.scale) for m, d in deltas.items()}
        residual = {m: projection_residual(d, subspace[m]) for m, d in deltas.items()}
    with atomic_dir(out) as tmp:
        write_lora(tmp, factors, head, template, lora.rank, lora.alpha, lora.rslora)
        (tmp / "projection.json").write_text(json.dumps({"residual": residual}, indent=1, sort_keys=True) + "\n")
        Converted.seal(tmp, {"task": task, "lora": lora.model_dump()},
                       upstream={"subspace": sub.content_hash, "source": content_hash(adapter or dense)},
                       backbone=sub.manifest.backbone, task=task, source=str(adapter or dense))
    mean_res = sum(residual.values()) / len(residual)
    print(f"converted: {out} (mean fraction of the update outside the subspace: {mean_res:.3f})")


def project_map(config: Path, workdir, seed, arm: str, map_file: Path, no_project: bool) -> None:
    """Bulk form: every mapped task's adapter, checked first (nothing is written on a bad entry), then
    projected (or imported) and sealed as the arm's `TaskAdapter`."""
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    if not no_project and run.cfg.lora.init != "osrm":
        raise OsrmError(f"--arm {arm} has init {run.cfg.lora.init}: no subspace to project into — use an arm with init "
                        "osrm, or --no-project to import the adapters as they are")
    entries, backbone, jobs = read_map(map_file, run.tasks), Backbone(run), {}
    for task, e in entries.items():
        src, head = source_adapter(e.adapter, e.head)
        num_labels = run.load_task(task)[0].num_labels
        backbone.check(src, head, num_labels, f"--map {map_file}: task {task!r}: {e.adapter}")
        sub = None if no_project else Subspace.open(run, arm, task)
        jobs[task] = (e, src, head, num_labels, sub)
    for task, job in jobs.items():
        _write_task(run, arm, task, *job)
    missing = [t for t in run.tasks if t not in entries]
    note = f"; tasks without an adapter here: {missing}" if missing else ""
    print(f"{'imported' if no_project else 'converted'} {len(jobs)} adapters into arm '{arm}' "
          f"({run.layout.adapter(arm, '<task>')}){note}")


def _write_task(run: Run, arm: str, task: str, e: MapEntry, src: Adapter, head: dict, num_labels: int, sub) -> None:
    """One task's adapter -> Layout.adapter(arm, task), sealed as if `osrm finetune` had written it."""
    saved = set(src.config.get("modules_to_save") or []) | {k.split(".")[0] for k in head}  # a --head-from head too
    lora, template = run.cfg.lora, {**src.config, "base_model_name_or_path": run.spec.source, "modules_to_save": sorted(saved)}
    upstream = {"source": content_hash(e.adapter), **({"head": content_hash(e.head)} if e.head else {})}
    if sub is None:  # imported: the factors as read (per-module scales folded into B), at the adapter's own scale
        factors, residual = {m: src.factors(m) for m in src.modules}, None
        rank, alpha, rslora = src.rank, float(src.config["lora_alpha"]), bool(src.config.get("use_rslora"))
    else:
        factors, residual = project_adapter(src, sub.tensors(), lora.scale)
        rank, alpha, rslora = lora.rank, lora.alpha, lora.rslora
        upstream["subspace"] = sub.content_hash
    scale = alpha / (rank**0.5 if rslora else rank)
    with atomic_dir(run.layout.adapter(arm, task)) as tmp:
        write_lora(tmp, factors, head, template, rank, alpha, rslora)
        if residual is not None:
            (tmp / "projection.json").write_text(json.dumps({"residual": residual}, indent=1, sort_keys=True) + "\n")
        TaskAdapter.seal(tmp, {"source": str(e.adapter), "head": str(e.head) if e.head else None, "projected": sub is not None,
                               "task": task, "arm": arm, "seed": run.cfg.seed,
                               "lora": {"rank": rank, "alpha": alpha, "rslora": rslora, "blocks": lora.blocks}},
                         upstream=upstream, seed=run.cfg.seed, backbone=run.backbone_identity(), arm=arm, task=task,
                         init="imported" if sub is None else "converted", num_labels=num_labels, rank=rank,
                         blocks=lora.blocks, targets=list(src.modules), scale=scale)


@app.command("fold")
@guarded
def fold(config: Path = CONFIG, adapter: Path = typer.Option(..., help="PEFT LoRA adapter folder (with its head)."),
         out: Path = OUT) -> None:
    """Fold an adapter into dense weights: W = W0 + s B A, plus its head; writes a save_pretrained() folder."""
    run = open_run(config)
    src = Adapter(adapter)
    head = src.head()
    num_labels = head_num_labels(head, adapter)
    model = load_classifier(run.spec, num_labels)
    add_deltas(model, individual_delta(src))
    load_head(model, head)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        Folded.seal(tmp, {"adapter": str(adapter)}, upstream={"adapter": content_hash(adapter)},
                    backbone=run.backbone_identity(), num_labels=num_labels)
    print(f"folded: {out} (dense {type(model).__name__}, {num_labels} labels)")
