"""`osrm convert`: (a) project adapters or dense fine-tunes into a task's OSRM subspace; (b) fold into dense weights."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from osrm_core.apply import add_deltas, load_head
from osrm_core.convert import project_dense, project_lora, projection_residual
from osrm_core.errors import OsrmError
from osrm_core.models import head_module_names, load_classifier
from stages.io.adapters import Adapter, head_num_labels, individual_delta, write_lora
from stages.io.artifacts import Converted, Folded, Subspace
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.manifest import content_hash
from stages.io.options import CONFIG, SEED, TASK, WORKDIR, run_overrides
from stages.io.run import open_run

app = typer.Typer(help="Convert updates: `project` into a task's OSRM subspace, or `fold` an adapter into dense weights.",
                  no_args_is_help=True)
OUT = typer.Option(..., "--out", "-o", help="Output folder (written atomically; an existing one is replaced only on success).")


def _dense_updates(run, folder: Path, modules: list[str]):
    """(dW per module, head) of a dense fine-tuned checkpoint folder relative to the backbone."""
    from transformers import AutoModelForSequenceClassification

    if not (folder / "config.json").is_file():
        raise OsrmError(f"--dense {folder}: not a model folder (no config.json) — pass a save_pretrained() checkpoint")
    try:
        ft = AutoModelForSequenceClassification.from_pretrained(str(folder))
    except (OSError, ValueError) as err:
        raise OsrmError(f"--dense {folder}: cannot load it ({type(err).__name__}) — pass an intact save_pretrained() checkpoint") from None
    base = load_classifier(run.spec, ft.config.num_labels)
    fnamed, bnamed = dict(ft.named_modules()), dict(base.named_modules())
    deltas = {m: (fnamed[m].weight - bnamed[m].weight).detach().float() for m in modules}
    head_names = head_module_names(ft)
    head = {n: p.detach() for n, p in ft.named_parameters() if n.split(".")[0] in head_names}
    return deltas, head


@app.command("project")
@guarded
def project(config: Path = CONFIG, task: str = TASK, workdir: Path = WORKDIR, out: Path = OUT,
            arm: str = typer.Option(None, "--arm", help="The arm whose subspace to project into (default: the first arm with init osrm)."),
            seed: int = SEED,
            adapter: Path = typer.Option(None, help="A PEFT LoRA adapter folder to project."),
            dense: Path = typer.Option(None, help="A dense fine-tuned checkpoint folder (W_ft); dW = W_ft - W0.")) -> None:
    """Project an existing LoRA (or dense fine-tune) of TASK into TASK's OSRM subspace, keeping its head."""
    if (adapter is None) == (dense is None):
        raise OsrmError("convert project: pass exactly one of --adapter or --dense")
    cfg = open_run(config, run_overrides(workdir, seed)).cfg
    arm = arm or next((a for a, v in cfg.arms.items() if v.init == "osrm"), None)
    if arm is None:
        raise OsrmError(f"{config}: no arm with init osrm, so no subspace to project into — pass --arm or add such an arm")
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    run.check_task(task)
    sub = Subspace.open(run, arm, task)
    subspace = sub.tensors()
    scale = run.cfg.lora.scale
    factors, residual = {}, {}
    if adapter is not None:
        src = Adapter(adapter)
        missing = sorted(set(src.modules) - set(subspace))
        if missing:
            raise OsrmError(f"{adapter}: module {missing[0]} has no subspace — build it with the adapter's lora.blocks")
        head, template = src.head(), src.config
        for m in progress(src.modules, "project"):
            a, b = src.factors(m)
            factors[m] = project_lora(a, b, src.scale, subspace[m], scale)
            residual[m] = projection_residual(src.delta(m), subspace[m])
    else:
        deltas, head = _dense_updates(run, dense, sorted(subspace))
        template = {"peft_type": "LORA", "target_modules": run.spec.target_suffixes(run.cfg.lora.blocks),
                    "modules_to_save": sorted({k.split(".")[0] for k in head}), "bias": "none", "lora_dropout": 0.0,
                    "task_type": None, "inference_mode": True, "fan_in_fan_out": False, "init_lora_weights": True}
        for m, d in deltas.items():
            factors[m], residual[m] = project_dense(d, subspace[m], scale), projection_residual(d, subspace[m])
    with atomic_dir(out) as tmp:
        write_lora(tmp, factors, head, template, run.cfg.lora.rank, run.cfg.lora.alpha)
        (tmp / "projection.json").write_text(json.dumps({"residual": residual}, indent=1, sort_keys=True) + "\n")
        Converted.seal(tmp, {"task": task, "lora": run.cfg.lora.model_dump()},
                       upstream={"subspace": sub.content_hash, "source": content_hash(adapter or dense)},
                       backbone=sub.manifest.backbone, task=task, source=str(adapter or dense))
    mean_res = sum(residual.values()) / len(residual)
    print(f"converted: {out} (mean fraction of the update outside the subspace: {mean_res:.3f})")


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
