"""A small, resumable fine-tuning loop (plain torch; a DeepSpeed engine plugs in through `Stepper`)."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from osrm_core.lora import adapter_parameters


@dataclass
class LoopState:
    """Where training is; saved in every checkpoint, so a resumed run continues the same sequence."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def linear_warmup_schedule(optimizer, total_steps: int, warmup_ratio: float):
    """Linear warm-up to the peak lr over warmup_ratio*total, then linear decay to 0 (the paper's schedule)."""
    warm = max(1, int(round(warmup_ratio * total_steps))) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Stepper:
    """Plain torch: backward, clip, optimiser and scheduler step. DeepSpeed provides the same three methods."""

    def __init__(self, model: nn.Module, optimizer, scheduler, grad_accum: int = 1, max_norm: float = 1.0):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.grad_accum, self.max_norm = grad_accum, max_norm

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.grad_accum).backward()

    def step(self) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]


def autocast(device: str, enabled: bool):
    """bf16 autocast where asked for (CPU and CUDA both support it)."""
    return torch.autocast(device_type=device, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


@dataclass
class LoopHooks:
    """Callbacks: `evaluate` returns validation metrics (with 'score'); the others may be no-ops."""

    evaluate: Callable[[], dict]
    on_best: Callable[[], None] = lambda: None
    after_step: Callable[[], None] = lambda: None
    checkpoint: Callable[[LoopState], None] = lambda s: None
    log: Callable[[dict], None] = lambda d: None


def model_loss(model: nn.Module, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
    """The model's own loss of a batch (inputs and labels on the model's device)."""
    return model(**inputs, labels=labels).loss


def train(model: nn.Module, batches: Callable[[int], Iterator], steps_per_epoch: int, epochs: int,
          stepper: Stepper, hooks: LoopHooks, state: LoopState, device: str = "cpu", bf16: bool = False,
          log_every: int = 20, checkpoint_every: int = 0, on_batch: Callable[[], None] = lambda: None,
          loss_fn: Callable[[nn.Module, dict, torch.Tensor], torch.Tensor] = model_loss) -> LoopState:
    """Train from `state` to the end; `batches(epoch)` must give the same sequence for the same epoch;
    `loss_fn(model, inputs, labels)` is the task kind's loss (TaskKind.loss)."""
    for epoch in range(state.epoch, epochs):
        model.train()
        it = itertools.islice(batches(epoch), state.step_in_epoch, None)
        for inputs, labels in it:
            with autocast(device, bf16):
                loss = loss_fn(model, {k: v.to(device) for k, v in inputs.items()}, labels.to(device))
            stepper.backward(loss)
            state.step_in_epoch += 1
            if state.step_in_epoch % stepper.grad_accum == 0 or state.step_in_epoch == steps_per_epoch:
                stepper.step()
                hooks.after_step()
                state.global_step += 1
                if state.global_step % log_every == 0:
                    hooks.log({"step": state.global_step, "epoch": epoch, "loss": float(loss.detach()), "lr": stepper.lr()})
                if checkpoint_every and state.global_step % checkpoint_every == 0:
                    hooks.checkpoint(state)
            on_batch()
        metrics = hooks.evaluate()
        state.history.append({"epoch": epoch, **metrics})
        if metrics["score"] > state.best_score:
            state.best_score, state.best_epoch = metrics["score"], epoch
            hooks.on_best()
        state.epoch, state.step_in_epoch = epoch + 1, 0
        hooks.log({"epoch": epoch, **{f"val_{k}": v for k, v in metrics.items()}})
        if checkpoint_every:
            hooks.checkpoint(state)
    return state


@torch.no_grad()
def predict(model: nn.Module, batches: Iterator, device: str = "cpu", bf16: bool = False) -> torch.Tensor:
    """Concatenated logits (n x num_labels) float32, in batch order."""
    model.eval()
    out = []
    for inputs, _ in batches:
        with autocast(device, bf16):
            out.append(model(**{k: v.to(device) for k, v in inputs.items()}).logits.float().cpu())
    return torch.cat(out) if out else torch.empty(0)


# --- DeepSpeed ZeRO ---------------------------------------------------------------------------------

class DeepSpeedStepper(Stepper):
    """DeepSpeed engine: it scales for accumulation, clips, steps optimiser and scheduler at its boundaries.

    DeepSpeed wants `step()` after every micro-batch; the loop's boundary `step()` is then a no-op.
    """

    def __init__(self, engine):
        self.engine, self.model, self.grad_accum = engine, engine, engine.gradient_accumulation_steps()

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)
        self.engine.step()

    def step(self) -> None:
        pass

    def lr(self) -> float:
        return self.engine.get_lr()[0]


def deepspeed_engine(model: nn.Module, ds_config: dict, lr: float, weight_decay: float, schedule: Callable):
    """(engine, stepper): torch AdamW over the trainable tensors, `schedule(optimizer)` as LR scheduler.

    The process group must exist (osrm_core.distributed.ensure_env + deepspeed.init_distributed).
    """
    import deepspeed

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=schedule,
                                           config=ds_config, dist_init_required=False)
    return engine, DeepSpeedStepper(engine)


def zero_stage(engine) -> int:
    return int(engine.zero_optimization_stage()) if engine is not None else 0


@torch.no_grad()
def gathered_trainable(model: nn.Module, stage: int) -> dict[str, torch.Tensor]:
    """Full float32 copies of what the adapter holds (lora.adapter_parameters: a frozen A or B included) on every
    rank; ZeRO-3 partitions are gathered first (without this a ZeRO-3 save writes zero-size tensors)."""
    named = adapter_parameters(model)
    ctx = contextlib.nullcontext()
    if stage == 3:
        import deepspeed

        ctx = deepspeed.zero.GatheredParameters([p for _, p in named], modifier_rank=None)
    with ctx:
        return {n: p.detach().float().cpu().clone() for n, p in named}
