"""One task's LoRA fine-tuning run, resolved from the config: the plain torch loop (resumable) and the
DeepSpeed ZeRO-2/3 loop, with per-epoch validation and best-epoch selection (docs/osrm.md, "Fine-tuning").

The caller (the `osrm finetune` stage) owns the I/O: it passes a checkpoint store (`load(cfg_hash)`,
`save(cfg_hash, state, trainable, best, optimizer, scheduler)`) and a progress bar factory."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable

import torch

from osrm_core import distributed, lora
from osrm_core.batching import length_grouped
from osrm_core.errors import OsrmError
from osrm_core.tasks.kinds import kind_of, metrics
from osrm_pipeline.pipeline_config import PipelineConfig
from osrm_core.train import (LoopHooks, LoopState, Stepper, deepspeed_engine, gathered_trainable, linear_warmup_schedule,
                             train, zero_stage)
from osrm_pipeline.hparams import read_json, task_hparams


def device_and_bf16(mode: str, local_rank: int = 0) -> tuple[str, bool]:
    device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if mode == "auto":  # CPU bf16 autocast measured 20x slower than fp32 on the 2-core CI machine (benchmarks/)
        return device, device.startswith("cuda") and torch.cuda.is_bf16_supported()
    return device, mode == "on"


@dataclass
class Job:
    """Everything one fine-tuning run needs, resolved from the config (shared by the plain and ZeRO paths)."""

    cfg: PipelineConfig
    task: str
    arm: str
    hp: dict
    spec: object
    data: dict
    world: distributed.World
    device: str
    bf16: bool
    steps_per_epoch: int = 0
    epochs: int = 0
    total: int = 0

    def batches(self, tokenizer):
        """epoch -> this rank's micro-batches (same global batches for any world size, DistributedSampler-style)."""
        ds, b, kind, max_length = self.data["train"], self.hp["batch_size"], kind_of(self.spec), self.cfg.data.max_length
        lengths = kind.train_lengths(tokenizer, ds, self.spec, max_length)

        def gen(epoch: int):  # global batches of similar token counts: much less padding on CPU
            order = length_grouped(lengths, b * self.world.size, self.cfg.seed, epoch)
            order = distributed.rank_order(order, b, self.world.rank, self.world.size)
            return kind.train_batches(tokenizer, ds, self.spec, b, max_length, order)

        return gen

    def cfg_hash(self) -> str:
        """What a resumable checkpoint must match: every section that changes training, task, init, hparams."""
        sections = self.cfg.digest("backbone", "suite", "seed", "data", "lora", "osrm", "finetune")
        return sections + self.task + self.arm + json.dumps(self.hp, sort_keys=True)

    @property
    def init(self) -> str:
        return self.cfg.lora.init


def make_job(cfg: PipelineConfig, task: str, arm: str, spec, data) -> Job:
    """The run of `task` for arm `arm` (cfg is the arm's view of the config, PipelineConfig.for_arm)."""
    hp = {"epochs": cfg.finetune.epochs, "lr": cfg.finetune.lr, "batch_size": cfg.finetune.batch_size,
          **task_hparams(cfg.finetune.hparams_file, task)}
    if "refit_epochs" in lora.INITS[cfg.lora.init].reads:  # a re-fit's own budget replaces the task's epochs
        hp["epochs"] = cfg.arms[arm].refit_epochs
    world = distributed.world_from_env()
    if world.size > 1 and not cfg.finetune.deepspeed:
        raise OsrmError(f"finetune runs on {world.size} ranks but finetune.deepspeed is null — set it to configs/deepspeed/zero2.json or zero3.json")
    if cfg.finetune.deepspeed and cfg.lora.procrustes:
        raise OsrmError("lora.procrustes edits A in place, which ZeRO's master weights would overwrite — set finetune.deepspeed: null for it")
    device, bf16 = device_and_bf16(cfg.finetune.bf16, world.local_rank)
    job = Job(cfg, task, arm, hp, spec, data, world, device, bf16)
    job.steps_per_epoch = distributed.steps_per_epoch(len(data["train"]), hp["batch_size"], world.size)
    job.epochs = math.ceil(hp["epochs"])
    job.total = math.ceil(hp["epochs"] * job.steps_per_epoch / cfg.finetune.grad_accum)
    return job


def evaluator(model, tokenizer, data, spec, cfg: PipelineConfig, device, bf16) -> Callable[[], dict]:
    """() -> validation metrics of `model` on data["validation"] (length-sorted batches, made once)."""
    kind, ds, max_length = kind_of(spec), data["validation"], cfg.data.max_length
    order = kind.eval_order(tokenizer, ds, spec, max_length)
    labels = kind.labels(spec, ds)[order]
    batches = list(kind.eval_batches(tokenizer, data, "validation", spec, cfg.evaluate.batch_size, max_length, order))
    return lambda: metrics(spec, kind.predict(model, batches, device, bf16), labels)


@dataclass(frozen=True)
class Trained:
    """What a fine-tuning loop returns: its state (history, best epoch), the trainable tensors to save (final_tensors)
    and the ZeRO stage it ran under (None: the plain torch loop)."""

    state: LoopState
    final: dict
    zero_stage: int | None = None


def final_tensors(job: Job, best: dict | None, current: Callable[[], dict]) -> dict:
    """The tensors that are saved: the best epoch's (select_on=validation) or the last ones."""
    if job.cfg.finetune.select_on == "validation" and best is not None:
        return best
    return current()


def train_plain(job: Job, model, tokenizer, store, make_bar) -> Trained:
    """Single-process torch loop with resumable checkpoints in `store` (stages/io/checkpoint.Store: its
    `resume` says whether a matching checkpoint is read first; checkpoints are written either way).
    make_bar(state) -> a progress bar with update/log/close."""
    cfg, cfg_hash = job.cfg, job.cfg_hash()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=job.hp["lr"],
                                  weight_decay=cfg.finetune.weight_decay)
    scheduler = linear_warmup_schedule(optimizer, job.total, cfg.finetune.warmup_ratio)
    stepper = Stepper(model, optimizer, scheduler, cfg.finetune.grad_accum)
    state, best = LoopState(), None
    restored = store.load(cfg_hash) if store.resume else None
    if restored:
        state, trainable, best, optim = restored
        lora.load_trainable(model, trainable)
        optimizer.load_state_dict(optim["optimizer"])
        scheduler.load_state_dict(optim["scheduler"])
        torch.set_rng_state(optim["rng"])
        print(f"resuming {job.task}/{job.arm} at epoch {state.epoch} step {state.step_in_epoch}")
    holder, bar = {"best": best}, make_bar(state)
    hooks = LoopHooks(
        evaluate=evaluator(model, tokenizer, job.data, job.spec, cfg, job.device, job.bf16),
        on_best=lambda: holder.update(best=lora.trainable_state(model)),
        after_step=(lambda: lora.project_orthonormal(model)) if cfg.lora.procrustes else (lambda: None),
        checkpoint=lambda s: store.save(cfg_hash, s, lora.trainable_state(model), holder["best"], optimizer, scheduler),
        log=bar.log,
    )
    state = train(model, job.batches(tokenizer), job.steps_per_epoch, job.epochs, stepper, hooks, state, job.device,
                  job.bf16, cfg.finetune.log_every, cfg.finetune.checkpoint_every, on_batch=lambda: bar.update(1),
                  loss_fn=kind_of(job.spec).loss)
    bar.close()
    return Trained(state, final_tensors(job, holder["best"], lambda: lora.trainable_state(model)))


def deepspeed_config(path: str, micro_batch: int, grad_accum: int, bf16: bool) -> dict:
    """Read a DeepSpeed JSON (configs/deepspeed/) and set what the pipeline config owns: the per-rank
    micro-batch, accumulation and bf16 (train_batch_size is derived by DeepSpeed: micro x accum x world)."""
    cfg = read_json(path, f"finetune.deepspeed: {path} does not exist — use configs/deepspeed/zero2.json or zero3.json")
    if "auto" in json.dumps(cfg):
        raise OsrmError(f"{path}: 'auto' values are HF-Trainer-only — write explicit numbers")
    cfg.pop("train_batch_size", None)
    cfg.update(train_micro_batch_size_per_gpu=micro_batch, gradient_accumulation_steps=grad_accum)
    cfg["bf16"] = {**cfg.get("bf16", {}), "enabled": bool(bf16)}
    cfg.setdefault("zero_allow_untested_optimizer", True)  # torch AdamW as client optimizer (no CPU-Adam build)
    return cfg


def train_zero(job: Job, model, tokenizer, make_bar) -> Trained:
    """DeepSpeed ZeRO-2/3 on every rank (one process or several); the final tensors are gathered.

    Every rank evaluates the whole validation split each epoch (ZeRO-3 forwards are collective), so
    they agree on the best epoch; no mid-run checkpoints are written on this path.
    """
    cfg = job.cfg
    ds_cfg = deepspeed_config(cfg.finetune.deepspeed, job.hp["batch_size"], cfg.finetune.grad_accum, job.bf16)
    engine, stepper = deepspeed_engine(model, ds_cfg, job.hp["lr"], cfg.finetune.weight_decay,
                                       lambda opt: linear_warmup_schedule(opt, job.total, cfg.finetune.warmup_ratio))
    stage, holder = zero_stage(engine), {"best": None}
    state = LoopState()
    bar = make_bar(state)
    hooks = LoopHooks(
        evaluate=evaluator(engine, tokenizer, job.data, job.spec, cfg, engine.device, False),
        on_best=lambda: holder.update(best=gathered_trainable(engine.module, stage)),
        log=bar.log,
    )
    state = train(engine, job.batches(tokenizer), job.steps_per_epoch, job.epochs, stepper, hooks, state,
                  str(engine.device), False, cfg.finetune.log_every, 0, on_batch=lambda: bar.update(1),
                  loss_fn=kind_of(job.spec).loss)
    bar.close()
    return Trained(state, final_tensors(job, holder["best"], lambda: gathered_trainable(engine.module, stage)), stage)


def start_deepspeed(job: Job) -> None:
    import deepspeed

    distributed.ensure_env(job.world)
    deepspeed.init_distributed(dist_backend="nccl" if job.device.startswith("cuda") else "gloo",
                               auto_mpi_discovery=False, verbose=False)
