"""`osrm finetune`: PEFT LoRA on each task (several in one process), plain (gaussian) or OSRM-initialised, a
classifier's head trained and saved with it (a generative task's adapter is a head-less CAUSAL_LM LoRA)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import typer

from osrm_core import distributed, lora
from osrm_core.tasks.kinds import kind_of
from osrm_core.train import LoopState
from osrm_pipeline.finetune import Job, Trained, make_job, start_deepspeed, train_plain, train_zero
from osrm_pipeline.run import Run, open_run, seed_everything
from stages.io import checkpoint, derived
from stages.io.artifacts import Subspace, TaskAdapter
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.options import ARM, CONFIG, SEED, TASKS, WORKDIR, expand_all, run_overrides
from stages.io.portable import patch_adapter_config, portable_base


def build_model(run: Run, task: str, spec):
    """The task kind's model (a classifier with its head, or a causal LM) + LoRA as the run's arm starts it
    (osrm_core.lora.INITS): PEFT's gaussian or kaiming A, the task's OSRM subspace, or a seeded orthonormal A,
    then rescaled to lora.a_norm; lora_B = 0. Returns (model, upstream)."""
    method, kind = lora.INITS[run.cfg.lora.init], kind_of(spec)
    sub = Subspace.open(run, run.arm, task) if method.needs_subspace else None  # checked before the slow load
    begin = derived.start(run, task) if method.start is not None else None  # a derived arm's converted update
    seed_everything(run.cfg.seed)  # the same head and PEFT A for the same seed
    model = kind.load_model(run.spec, spec)
    model = lora.attach_lora(model, run.spec.target_suffixes(run.cfg.lora.blocks), kind.heads(model),
                             **run.cfg.lora.adapter_args(), task_type=kind.peft_task_type)
    lora.initialise(model, run.cfg.lora.init, run.cfg.seed, None if sub is None else sub.tensors(), run.cfg.lora.a0_norm)
    upstream = {} if sub is None else {"subspace": sub.content_hash}
    if begin is not None:
        lora.set_start(model, begin.factors, begin.head, begin.source.manifest.arm)
        upstream |= begin.upstream
        derived.announce(task, begin.report)
    lora.set_freeze(model, run.cfg.lora.freeze)
    return model, upstream


class Bar:
    """The fine-tuning progress bar: one tick per batch, validation lines per epoch (rank 0 only)."""

    def __init__(self, job: Job, state: LoopState):
        n = job.epochs * job.steps_per_epoch
        self.job, self.bar = job, progress(range(n), f"finetune {job.task} [{job.arm}]", total=n)
        self.bar.update(state.epoch * job.steps_per_epoch + state.step_in_epoch)
        self.update, self.close = self.bar.update, self.bar.close

    def log(self, d: dict) -> None:
        self.bar.set_postfix({k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items() if k != "epoch"})
        if "val_score" in d and self.job.world.main:
            self.bar.write(f"[{self.job.task}/{self.job.arm}] epoch {d['epoch']}: validation "
                           + ", ".join(f"{k[4:]}={v:.2f}" for k, v in d.items() if k.startswith("val_")))


@guarded(preload=("transformers.modeling_utils", "peft"))  # imported by build_model anyway: start-up, not work
def main(config: Path = CONFIG, task: list[str] = TASKS, arm: str = ARM, seed: int = SEED, workdir: Path = WORKDIR,
         resume: bool = typer.Option(True, help="Continue from the last checkpoint of this exact config, if any (plain torch path).")) -> None:
    """Fine-tune each TASK with LoRA as ARM starts it (its init and lora overrides); writes a PEFT adapter folder with the task head.

    Output per task, written as soon as that task is done: <workdir>/adapters/seed<seed>/<arm>/<task>/
    (adapter_config.json, adapter_model.safetensors incl. the head, training.json with per-epoch validation
    metrics and how far A moved, manifest.json).
    With finetune.deepspeed set it runs under DeepSpeed ZeRO on one rank or several (torchrun /
    deepspeed launcher / srun set RANK, WORLD_SIZE); rank 0 writes the artifact.
    """
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    tasks = expand_all(task, run.tasks, run.check_task)
    try:
        for name in tasks:
            finetune_task(run, name, resume)
    finally:
        if run.cfg.finetune.deepspeed:
            distributed.destroy()


def finetune_task(run: Run, task: str, resume: bool) -> Path:
    """Fine-tune one task of the run's arm and write its adapter folder (atomically); returns that folder.
    The model is seeded afresh, so a task gets the same adapter whether run alone or after others."""
    arm = run.arm
    if not lora.INITS[run.cfg.lora.init].trains:
        return derived.write_start(run, task)
    job = make_job(run.cfg, task, arm, *run.load_task(task))
    model, upstream = build_model(run, task, job.spec)
    if run.cfg.finetune.gradient_checkpointing:
        model.base_model.model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    a0 = lora.a_matrices(model)
    start, make_bar = time.time(), lambda state: Bar(job, state)
    if run.cfg.finetune.deepspeed:
        start_deepspeed(job)  # joins the process group once; later tasks reuse it
        trained = train_zero(job, model, run.tokenizer, make_bar)
        if job.world.main:
            _write(run, job, model, trained, a0, time.time() - start, upstream)
        distributed.barrier()
        return run.layout.adapter(arm, task)
    model.to(job.device)
    store = checkpoint.Store(run.layout.checkpoints(arm, task), resume)
    trained = train_plain(job, model, run.tokenizer, store, make_bar)
    return _write(run, job, model, trained, a0, time.time() - start, upstream)


def _write(run: Run, job: Job, model, trained: Trained, a0: dict, elapsed: float, upstream: dict) -> Path:
    """Write the adapter folder (PEFT format + head, training.json, manifest) from the trained tensors."""
    cfg, task, arm, state, final = job.cfg, job.task, job.arm, trained.state, trained.final
    drift = lora.a_drift({n: final[f"{lora.PEFT_PREFIX}{n}.lora_A.default.weight"] for n in a0}, a0)
    a0_norm = lora.a_norms(a0)
    a0_norm_mean = sum(a0_norm.values()) / len(a0_norm)
    n_train = len(job.data["train"])
    summary = {"task": task, "arm": arm, "init": job.init, "hparams": job.hp, "history": state.history, "best_epoch": state.best_epoch,
               "best_validation_score": state.best_score, "a_drift": drift,
               "a_drift_mean": sum(drift.values()) / len(drift), "a0_norm": a0_norm, "a0_norm_mean": a0_norm_mean,
               "train_seconds": round(elapsed, 2),
               "examples_per_second": round(n_train * job.epochs / max(elapsed, 1e-9), 1), "bf16": job.bf16,
               "device": job.device, "world_size": job.world.size, "deepspeed": cfg.finetune.deepspeed, "zero_stage": trained.zero_stage}
    out = run.layout.adapter(arm, task)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, state_dict=final)
        patch_adapter_config(tmp, base_model_name_or_path=portable_base(run.spec))  # not this machine's path
        (tmp / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
        TaskAdapter.seal(tmp, {"lora": cfg.lora.model_dump(), "finetune": cfg.finetune.model_dump(), "hparams": job.hp,
                               "task": task, "arm": arm, "seed": cfg.seed, "data": cfg.data.model_dump()},
                         upstream=upstream, seed=cfg.seed, backbone=run.backbone_identity(), arm=arm, task=task, init=job.init,
                         num_labels=job.spec.num_labels, rank=cfg.lora.rank, blocks=cfg.lora.blocks,
                         targets=sorted(a0), scale=cfg.lora.scale, a0_norm=a0_norm_mean, source_arm=cfg.arms[arm].from_)
    shutil.rmtree(run.layout.checkpoints(arm, task), ignore_errors=True)
    trained = (f"best validation score {state.best_score:.2f} at epoch {state.best_epoch}; mean A drift "
               f"{summary['a_drift_mean']:.3f}; {summary['examples_per_second']} ex/s" if state.best_epoch >= 0
               else "0 epochs: the start as it is, not trained")  # e.g. a conversion with refit_epochs: 0
    print(f"adapter: {out} ({trained})")
    return out
