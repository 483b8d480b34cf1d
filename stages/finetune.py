"""`osrm finetune`: PEFT LoRA on one task, plain (gaussian) or OSRM-initialised, head trained and saved with it."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import typer
from safetensors.torch import load_file

from osrm_core import distributed, lora
from osrm_core.batching import char_lengths, iterate, length_grouped, length_sorted
from osrm_core.errors import OsrmError
from osrm_core.hparams import task_hparams
from osrm_core.metrics import compute, predictions
from osrm_core.models import head_module_names, load_classifier, load_tokenizer
from osrm_core.train import (LoopHooks, LoopState, Stepper, deepspeed_config, deepspeed_engine, gathered_trainable,
                              linear_warmup_schedule, predict, train, zero_stage)
from stages.io import checkpoint
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.checks import check_subspace
from stages.io.manifest import read_manifest, write_manifest
from stages.io.options import CONFIG, INIT, TASK, WORKDIR
from stages.io.run import Run, open_run, seed_everything

SUBSPACE_FILE = "subspace.safetensors"


def _device_and_bf16(mode: str, local_rank: int = 0) -> tuple[str, bool]:
    device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if mode == "auto":  # CPU bf16 autocast measured 20x slower than fp32 on the 2-core CI machine (benchmarks/)
        return device, device.startswith("cuda") and torch.cuda.is_bf16_supported()
    return device, mode == "on"


def load_subspace(run: Run, task: str) -> tuple[dict, dict]:
    folder = run.layout.subspace(task)
    manifest = read_manifest(folder, "build-subspace", f"osrm build-subspace --task {task}")
    check_subspace(run, task, manifest, folder)  # backbone, rank, blocks, estimator settings
    return load_file(folder / SUBSPACE_FILE), manifest


def build_model(run: Run, task: str, num_labels: int, init: str):
    """Base classifier + LoRA; OSRM init puts A_t into lora_A and zeros lora_B. Returns (model, upstream)."""
    sub, manifest = load_subspace(run, task) if init == "osrm" else (None, None)  # fail before the slow load
    seed_everything(run.cfg.seed)  # the same head and gaussian A for the same seed
    model = load_classifier(run.spec, num_labels)
    model = lora.attach_lora(model, run.spec.target_suffixes(run.cfg.lora.blocks), run.cfg.lora, head_module_names(model))
    upstream = {}
    if init == "osrm":
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


@dataclass
class Job:
    """Everything one fine-tuning run needs, resolved from the config (shared by the plain and ZeRO paths)."""

    run: Run
    task: str
    init: str
    hp: dict
    spec: object
    data: dict
    world: distributed.World
    device: str
    bf16: bool
    steps_per_epoch: int = 0
    epochs: int = 0
    total: int = 0
    zero_stage: int | None = None

    @property
    def cfg(self):
        return self.run.cfg

    def batches(self, tokenizer):
        """epoch -> this rank's micro-batches (same global batches for any world size, DistributedSampler-style)."""
        ds, b = self.data["train"], self.hp["batch_size"]
        lengths = char_lengths(ds, self.spec.text_fields)

        def gen(epoch: int):  # global batches of similar-length rows: much less padding on CPU
            order = length_grouped(lengths, b * self.world.size, self.cfg.seed, epoch)
            order = distributed.rank_order(order, b, self.world.rank, self.world.size)
            return iterate(tokenizer, ds, self.spec.text_fields, b, self.cfg.data.max_length, order)

        return gen


def make_job(run: Run, task: str) -> Job:
    cfg = run.cfg
    hp = {"epochs": cfg.finetune.epochs, "lr": cfg.finetune.lr, "batch_size": cfg.finetune.batch_size,
          **task_hparams(cfg.finetune.hparams_file, task)}
    world = distributed.world_from_env()
    if world.size > 1 and not cfg.finetune.deepspeed:
        raise OsrmError(f"finetune runs on {world.size} ranks but finetune.deepspeed is null — set it to configs/deepspeed/zero2.json or zero3.json")
    if cfg.finetune.deepspeed and cfg.lora.procrustes:
        raise OsrmError("lora.procrustes edits A in place, which ZeRO's master weights would overwrite — set finetune.deepspeed: null for it")
    spec, data = run.load_task(task)
    device, bf16 = _device_and_bf16(cfg.finetune.bf16, world.local_rank)
    job = Job(run, task, cfg.lora.init, hp, spec, data, world, device, bf16)
    job.steps_per_epoch = distributed.steps_per_epoch(len(data["train"]), hp["batch_size"], world.size)
    job.epochs = math.ceil(hp["epochs"])
    job.total = math.ceil(hp["epochs"] * job.steps_per_epoch / cfg.finetune.grad_accum)
    return job


def _bar_logger(job: Job, bar):
    def log(d: dict) -> None:
        bar.set_postfix({k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items() if k != "epoch"})
        if "val_score" in d and job.world.main:
            bar.write(f"[{job.task}/{job.init}] epoch {d['epoch']}: validation "
                      + ", ".join(f"{k[4:]}={v:.2f}" for k, v in d.items() if k.startswith("val_")))

    return log


def _progress(job: Job, state: LoopState):
    n = job.epochs * job.steps_per_epoch
    bar = progress(range(n), f"finetune {job.task} [{job.init}]", total=n)
    bar.update(state.epoch * job.steps_per_epoch + state.step_in_epoch)
    return bar


def train_plain(job: Job, model, tokenizer, resume: bool):
    """Single-process torch loop with resumable checkpoints. Returns (state, final trainable tensors)."""
    cfg = job.cfg
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=job.hp["lr"], weight_decay=cfg.finetune.weight_decay)
    scheduler = linear_warmup_schedule(optimizer, job.total, cfg.finetune.warmup_ratio)
    stepper = Stepper(model, optimizer, scheduler, cfg.finetune.grad_accum)
    cfg_hash = cfg.digest("backbone", "suite", "seed", "data", "lora", "osrm", "finetune") + job.task + job.init + json.dumps(job.hp, sort_keys=True)
    ckpt_dir = job.run.layout.checkpoints(job.init, job.task)
    state, best = LoopState(), None
    restored = checkpoint.load(ckpt_dir, cfg_hash) if resume else None
    if restored:
        state, trainable, best, optim = restored
        lora.load_trainable(model, trainable)
        optimizer.load_state_dict(optim["optimizer"])
        scheduler.load_state_dict(optim["scheduler"])
        torch.set_rng_state(optim["rng"])
        print(f"resuming {job.task}/{job.init} at epoch {state.epoch} step {state.step_in_epoch}")
    holder = {"best": best}
    bar = _progress(job, state)
    hooks = LoopHooks(
        evaluate=evaluator(model, tokenizer, job.data["validation"], job.spec, cfg, job.device, job.bf16),
        on_best=lambda: holder.update(best=lora.trainable_state(model)),
        after_step=(lambda: lora.project_orthonormal(model)) if cfg.lora.procrustes else (lambda: None),
        checkpoint=lambda s: checkpoint.save(ckpt_dir, cfg_hash, s, lora.trainable_state(model), holder["best"], optimizer, scheduler),
        log=_bar_logger(job, bar),
    )
    state = train(model, job.batches(tokenizer), job.steps_per_epoch, job.epochs, stepper, hooks, state, job.device,
                  job.bf16, cfg.finetune.log_every, cfg.finetune.checkpoint_every, on_batch=lambda: bar.update(1))
    bar.close()
    return state, _final(job, holder["best"], lambda: lora.trainable_state(model))


def train_zero(job: Job, model, tokenizer):
    """DeepSpeed ZeRO-2/3 on every rank (one process or several). Returns (state, gathered final tensors).

    Every rank evaluates the whole validation split each epoch (ZeRO-3 forwards are collective), so
    they agree on the best epoch; no mid-run checkpoints are written on this path.
    """
    cfg = job.cfg
    ds_cfg = deepspeed_config(cfg.finetune.deepspeed, job.hp["batch_size"], cfg.finetune.grad_accum, job.bf16)
    engine, stepper = deepspeed_engine(model, ds_cfg, job.hp["lr"], cfg.finetune.weight_decay,
                                       lambda opt: linear_warmup_schedule(opt, job.total, cfg.finetune.warmup_ratio))
    stage, holder = zero_stage(engine), {"best": None}
    state = LoopState()
    bar = _progress(job, state)
    hooks = LoopHooks(
        evaluate=evaluator(engine, tokenizer, job.data["validation"], job.spec, cfg, engine.device, False),
        on_best=lambda: holder.update(best=gathered_trainable(engine.module, stage)),
        log=_bar_logger(job, bar),
    )
    state = train(engine, job.batches(tokenizer), job.steps_per_epoch, job.epochs, stepper, hooks, state,
                  str(engine.device), False, cfg.finetune.log_every, 0, on_batch=lambda: bar.update(1))
    bar.close()
    job.zero_stage = stage
    return state, _final(job, holder["best"], lambda: gathered_trainable(engine.module, stage))


def _final(job: Job, best: dict | None, current):
    """The tensors that are saved: the best epoch's (select_on=validation) or the last ones."""
    if job.cfg.finetune.select_on == "validation" and best is not None:
        return best
    return current()


def _start_deepspeed(job: Job) -> None:
    import deepspeed

    distributed.ensure_env(job.world)
    deepspeed.init_distributed(dist_backend="nccl" if job.device.startswith("cuda") else "gloo",
                               auto_mpi_discovery=False, verbose=False)


@guarded
def main(config: Path = CONFIG, task: str = TASK, init: str = INIT, workdir: Path = WORKDIR,
         resume: bool = typer.Option(True, help="Continue from the last checkpoint of this exact config, if any (plain torch path).")) -> None:
    """Fine-tune TASK with LoRA (gaussian or OSRM init); writes a PEFT adapter folder with the task head.

    Output: <workdir>/adapters/<init>/<task>/ (adapter_config.json, adapter_model.safetensors incl. the
    head, training.json with per-epoch validation metrics and how far A moved, manifest.json).
    With finetune.deepspeed set it runs under DeepSpeed ZeRO on one rank or several (torchrun /
    deepspeed launcher / srun set RANK, WORLD_SIZE); rank 0 writes the artifact.
    """
    run = open_run(config, {"workdir": str(workdir) if workdir else None, "lora.init": init})
    run.check_task(task)
    job = make_job(run, task)
    tokenizer = load_tokenizer(run.spec)
    model, upstream = build_model(run, task, job.spec.num_labels, job.init)
    if run.cfg.finetune.gradient_checkpointing:
        model.base_model.model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    a0 = lora.a_matrices(model)
    start = time.time()
    if run.cfg.finetune.deepspeed:
        _start_deepspeed(job)
        try:
            state, final = train_zero(job, model, tokenizer)
            if job.world.main:
                _write(job, model, final, a0, state, time.time() - start, upstream)
            distributed.barrier()
        finally:
            distributed.destroy()
        return
    model.to(job.device)
    state, final = train_plain(job, model, tokenizer, resume)
    _write(job, model, final, a0, state, time.time() - start, upstream)


def _drift(final: dict, a0: dict) -> dict[str, float]:
    a_end = {n: final[f"{lora.PEFT_PREFIX}{n}.lora_A.default.weight"] for n in a0}
    return lora.a_drift(a_end, a0)


def _write(job: Job, model, final: dict, a0: dict, state: LoopState, elapsed: float, upstream: dict) -> None:
    """Write the adapter folder (PEFT format + head, training.json, manifest) from the `final` tensors."""
    cfg, task, init = job.cfg, job.task, job.init
    drift = _drift(final, a0)
    n_train = len(job.data["train"])
    summary = {"task": task, "init": init, "hparams": job.hp, "history": state.history, "best_epoch": state.best_epoch,
               "best_validation_score": state.best_score, "a_drift": drift,
               "a_drift_mean": sum(drift.values()) / len(drift), "train_seconds": round(elapsed, 2),
               "examples_per_second": round(n_train * job.epochs / max(elapsed, 1e-9), 1), "bf16": job.bf16,
               "device": job.device, "world_size": job.world.size, "deepspeed": cfg.finetune.deepspeed, "zero_stage": job.zero_stage}
    out = job.run.layout.adapter(init, task)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, state_dict=final)
        (tmp / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
        write_manifest(tmp, "finetune", {"lora": cfg.lora.model_dump(), "finetune": cfg.finetune.model_dump(),
                       "hparams": job.hp, "task": task, "init": init, "seed": cfg.seed, "data": cfg.data.model_dump()},
                       upstream=upstream, backbone=job.run.backbone_identity(), task=task, init=init,
                       num_labels=job.spec.num_labels, rank=cfg.lora.rank, blocks=cfg.lora.blocks,
                       targets=sorted(a0), scale=cfg.lora.scale)
    shutil.rmtree(job.run.layout.checkpoints(init, task), ignore_errors=True)
    print(f"adapter: {out} (best validation score {state.best_score:.2f} at epoch {state.best_epoch}; "
          f"mean A drift {summary['a_drift_mean']:.3f}; {summary['examples_per_second']} ex/s)")
