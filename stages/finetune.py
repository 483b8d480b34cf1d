"""`osrm finetune`: PEFT LoRA on one task, plain (gaussian) or OSRM-initialised, head trained and saved with it."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import torch
import typer
from safetensors.torch import load_file

from osrm_core import lora
from osrm_core.batching import iterate, length_sorted, shuffled
from osrm_core.hparams import task_hparams
from osrm_core.metrics import compute, predictions
from osrm_core.models import head_module_names, load_classifier, load_tokenizer
from osrm_core.train import LoopHooks, LoopState, Stepper, linear_warmup_schedule, predict, train
from stages.io import checkpoint
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.manifest import read_manifest, require_same, write_manifest
from stages.io.options import CONFIG, INIT, TASK, WORKDIR
from stages.io.run import Run, open_run, seed_everything

SUBSPACE_FILE = "subspace.safetensors"


def _device_and_bf16(mode: str) -> tuple[str, bool]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if mode == "auto":  # CPU bf16 autocast measured 20x slower than fp32 on the 2-core CI machine (benchmarks/)
        return device, device == "cuda" and torch.cuda.is_bf16_supported()
    return device, mode == "on"


def load_subspace(run: Run, task: str) -> tuple[dict, dict]:
    folder = run.layout.subspace(task)
    manifest = read_manifest(folder, "build-subspace", f"osrm build-subspace --task {task}")
    fix = f"rerun `osrm build-subspace --task {task}` with this config"
    require_same("rank", run.cfg.lora.rank, manifest["rank"], folder, fix)
    require_same("backbone", run.backbone_identity()["weights"], manifest["backbone"]["weights"], folder, fix)
    return load_file(folder / SUBSPACE_FILE), manifest


def build_model(run: Run, task: str, num_labels: int, init: str):
    """Base classifier + LoRA; OSRM init puts A_t into lora_A and zeros lora_B. Returns (model, upstream)."""
    seed_everything(run.cfg.seed)  # the same head and gaussian A for the same seed
    model = load_classifier(run.spec, num_labels)
    model = lora.attach_lora(model, run.spec.target_suffixes(run.cfg.lora.blocks), run.cfg.lora, head_module_names(model))
    upstream = {}
    if init == "osrm":
        sub, manifest = load_subspace(run, task)
        lora.osrm_init(model, sub)
        upstream["subspace"] = manifest["content_hash"]
    lora.set_freeze(model, run.cfg.lora.freeze)
    return model, upstream


def evaluator(model, tokenizer, ds, spec, cfg, device, bf16):
    order = length_sorted(tokenizer, ds, spec.text_fields)
    labels = torch.as_tensor(list(ds["label"]))[order].numpy()

    def evaluate() -> dict:
        logits = predict(model, iterate(tokenizer, ds, spec.text_fields, cfg.evaluate.batch_size, cfg.data.max_length, order), device, bf16)
        return compute(spec.metric, predictions(logits.numpy(), spec.is_regression), labels)

    return evaluate


@guarded
def main(config: Path = CONFIG, task: str = TASK, init: str = INIT, workdir: Path = WORKDIR,
         resume: bool = typer.Option(True, help="Continue from the last checkpoint of this exact config, if any.")) -> None:
    """Fine-tune TASK with LoRA (gaussian or OSRM init); writes a PEFT adapter folder with the task head.

    Output: <workdir>/adapters/<init>/<task>/ (adapter_config.json, adapter_model.safetensors incl. the
    head, training.json with per-epoch validation metrics and how far A moved, manifest.json).
    """
    run = open_run(config, {"workdir": str(workdir) if workdir else None, "lora.init": init})
    cfg, init = run.cfg, run.cfg.lora.init
    run.check_task(task)
    hp = {"epochs": cfg.finetune.epochs, "lr": cfg.finetune.lr, "batch_size": cfg.finetune.batch_size,
          **task_hparams(cfg.finetune.hparams_file, task)}
    spec, data = run.load_task(task)
    device, bf16 = _device_and_bf16(cfg.finetune.bf16)
    tokenizer = load_tokenizer(run.spec)
    model, upstream = build_model(run, task, spec.num_labels, init)
    model.to(device)
    if cfg.finetune.gradient_checkpointing:
        model.base_model.model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    a0 = lora.a_matrices(model)
    train_ds = data["train"]
    steps_per_epoch = math.ceil(len(train_ds) / hp["batch_size"])
    epochs = math.ceil(hp["epochs"])
    total = math.ceil(hp["epochs"] * steps_per_epoch / cfg.finetune.grad_accum)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=cfg.finetune.weight_decay)
    scheduler = linear_warmup_schedule(optimizer, total, cfg.finetune.warmup_ratio)
    stepper = Stepper(model, optimizer, scheduler, cfg.finetune.grad_accum)
    cfg_hash = cfg.digest("backbone", "suite", "seed", "data", "lora", "osrm", "finetune") + task + init + json.dumps(hp, sort_keys=True)
    ckpt_dir = run.layout.checkpoints(init, task)
    state, best = LoopState(), None
    restored = checkpoint.load(ckpt_dir, cfg_hash) if resume else None
    if restored:
        state, trainable, best, optim = restored
        lora.load_trainable(model, trainable)
        optimizer.load_state_dict(optim["optimizer"])
        scheduler.load_state_dict(optim["scheduler"])
        torch.set_rng_state(optim["rng"])
        print(f"resuming {task}/{init} at epoch {state.epoch} step {state.step_in_epoch}")
    holder = {"best": best}
    bar = progress(range(epochs * steps_per_epoch), f"finetune {task} [{init}]", total=epochs * steps_per_epoch)
    bar.update(state.epoch * steps_per_epoch + state.step_in_epoch)

    def batches(epoch: int):
        return iterate(tokenizer, train_ds, spec.text_fields, hp["batch_size"], cfg.data.max_length,
                       shuffled(len(train_ds), cfg.seed, epoch))

    def log(d: dict) -> None:
        bar.set_postfix({k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items() if k != "epoch"})
        if "val_score" in d:
            bar.write(f"[{task}/{init}] epoch {d['epoch']}: validation " + ", ".join(f"{k[4:]}={v:.2f}" for k, v in d.items() if k.startswith("val_")))

    def on_best() -> None:
        holder["best"] = lora.trainable_state(model)

    hooks = LoopHooks(
        evaluate=evaluator(model, tokenizer, data["validation"], spec, cfg, device, bf16),
        on_best=on_best,
        after_step=(lambda: lora.project_orthonormal(model)) if cfg.lora.procrustes else (lambda: None),
        checkpoint=lambda s: checkpoint.save(ckpt_dir, cfg_hash, s, lora.trainable_state(model), holder["best"], optimizer, scheduler),
        log=log,
    )
    start = time.time()
    state = train(model, batches, steps_per_epoch, epochs, stepper, hooks, state, device, bf16,
                  cfg.finetune.log_every, cfg.finetune.checkpoint_every, on_batch=lambda: bar.update(1))
    bar.close()
    elapsed = time.time() - start
    if cfg.finetune.select_on == "validation" and holder["best"] is not None:
        lora.load_trainable(model, holder["best"])
    drift = lora.a_drift(lora.a_matrices(model), a0)
    out = run.layout.adapter(init, task)
    summary = {"task": task, "init": init, "hparams": hp, "history": state.history, "best_epoch": state.best_epoch,
               "best_validation_score": state.best_score, "a_drift": drift,
               "a_drift_mean": sum(drift.values()) / len(drift), "train_seconds": round(elapsed, 2),
               "examples_per_second": round(len(train_ds) * (epochs - 0) / max(elapsed, 1e-9), 1), "bf16": bf16, "device": device}
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        (tmp / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
        write_manifest(tmp, "finetune", {"lora": cfg.lora.model_dump(), "finetune": cfg.finetune.model_dump(),
                       "hparams": hp, "task": task, "init": init, "seed": cfg.seed, "data": cfg.data.model_dump()},
                       upstream=upstream, backbone=run.backbone_identity(), task=task, init=init,
                       num_labels=spec.num_labels, rank=cfg.lora.rank, blocks=cfg.lora.blocks,
                       targets=sorted(lora.lora_layers(model)), scale=cfg.lora.scale)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    print(f"adapter: {out} (best validation score {state.best_score:.2f} at epoch {state.best_epoch}; "
          f"mean A drift {summary['a_drift_mean']:.3f}; {summary['examples_per_second']} ex/s)")
