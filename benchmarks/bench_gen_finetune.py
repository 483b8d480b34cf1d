"""Generative LoRA fine-tuning (completion-only loss): the project's loop vs Hugging Face `Trainer`, in one run.

    .venv/bin/python benchmarks/bench_gen_finetune.py [--task question_type] [--rows 64] [--batch 8] [--repeats 2]
        [--threads 1] [--json out.json]

Model: the packaged SmolLM2-135M-Instruct (configs/backbones/smollm2.yaml, unpacked once outside the timing; every
run trains a fresh copy), a PEFT CAUSAL_LM LoRA r=8, alpha 16 on q+v from the same seeded initial weights. Data:
`--rows` train rows of a default-suite task written as text (gen_tasks.choice_task: prompt, then the label word +
EOS; or `--task headline`: a headline from its lead sentence). Same on every side: rows, batch, one epoch (rows /
batch steps), lr, linear schedule with 6 % warm-up, AdamW without weight decay, clipping 1.0, loss on the target
tokens only (the prompt and the padding are -100), torch thread count; no validation.

- **ours**: what `osrm finetune` runs for a generative task: attach_lora(task_type CAUSAL_LM), the generative
  kind's train_lengths / train_batches over osrm_core.batching.length_grouped orders, Stepper + train with the
  kind's loss (osrm_core.generative.loss: the LM head only on the columns that predict a target token);
- **ours (model's own loss)**: the same with `model(**inputs, labels=labels).loss` (logits at every position), the
  loss ours used before 2026-12-07.
- **trainer (same batches)**: `datasets.map` tokenisation with the prompt's labels set to -100
  (gen_tasks.completion_rows), `DataCollatorForSeq2Seq` (pads input_ids and pads labels with -100), the rows
  in ours' order with `train_sampling_strategy="sequential"`: the same batches as ours, so the loss at step 1
  is checked close to ours'.
- **trainer (default)**: the same with Trainer's default random batches (`train_sampling_strategy="random"`).

Timed: data preparation (tokenisation) + building the loop / Trainer + training; not the model load or copy.
Process-CPU seconds (one torch thread: the work done) and wall seconds, medians over alternating repeats (seed
42 + i) after one short excluded warm-up per side; speed = Trainer (same batches)'s seconds / the side's.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time

import torch

from bench_finetune import machine, median, setup, write_json
from gen_tasks import choice_task, completion_rows, headline_task, load_smollm2

from osrm_core.batching import length_grouped
from osrm_core.kinds.generative import Generative
from osrm_core.train import model_loss

KIND = Generative()
REFERENCE = "trainer (same batches)"


def build(base, seed: int):
    """A fresh copy of `base` with a PEFT CAUSAL_LM LoRA (r 8, alpha 16, q+v), identical for the same seed."""
    from osrm_core.lora import attach_lora

    torch.manual_seed(seed)
    return attach_lora(copy.deepcopy(base), ["q_proj", "v_proj"], [], rank=8, alpha=16.0, task_type=KIND.peft_task_type)


def run_ours(model, tok, spec, ds, a, seed: int, loss_fn) -> dict:
    from osrm_core.train import LoopHooks, LoopState, Stepper, linear_warmup_schedule, train

    start, cpu = time.perf_counter(), time.process_time()
    steps = math.ceil(len(ds) / a.batch)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.0)
    stepper = Stepper(model, opt, linear_warmup_schedule(opt, steps, a.warmup), 1)
    lengths = KIND.train_lengths(tok, ds, spec, a.max_length)
    batches = lambda epoch: KIND.train_batches(tok, ds, spec, a.batch, a.max_length, length_grouped(lengths, a.batch, seed, epoch))
    losses = []
    hooks = LoopHooks(evaluate=lambda: {"score": 0.0}, log=lambda d: losses.append(d["loss"]) if "loss" in d else None)
    train(model, batches, steps, 1, stepper, hooks, LoopState(), log_every=1, loss_fn=loss_fn)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "losses": losses}


def run_trainer(model, tok, spec, ds, a, seed: int, order: list[int] | None) -> dict:
    """Trainer on the completion-only rows; `order`: feed the rows in this order (sequential sampler), else random."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    start, cpu = time.perf_counter(), time.process_time()
    rows = completion_rows(tok, ds, spec)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=a.batch, num_train_epochs=1, learning_rate=a.lr,
                                 lr_scheduler_type="linear", warmup_steps=a.warmup, weight_decay=0.0, max_grad_norm=1.0,
                                 eval_strategy="no", save_strategy="no", logging_strategy="steps", logging_steps=1,
                                 report_to="none", use_cpu=True, seed=seed, data_seed=seed, disable_tqdm=True,
                                 train_sampling_strategy="random" if order is None else "sequential")
        trainer = Trainer(model=model, args=args, train_dataset=rows if order is None else rows.select(order),
                          data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
        trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "losses": losses}


def one(name: str, ctx, a, seed: int) -> dict:
    model = build(ctx["base"], seed)
    tok, spec, ds = ctx["tok"], ctx["spec"], ctx["ds"]
    if name.startswith("ours"):
        res = run_ours(model, tok, spec, ds, a, seed, KIND.loss if name == "ours" else model_loss)
    else:
        order = length_grouped(KIND.train_lengths(tok, ds, spec, a.max_length), a.batch, seed, 0) if name == REFERENCE else None
        res = run_trainer(model, tok, spec, ds, a, seed, order)
    assert torch.get_num_threads() == a.threads, "a side changed the torch thread count"
    return res


SIDES = ("ours", "ours (model's own loss)", REFERENCE, "trainer (default)")


def summarise(runs: dict[str, list[dict]], n_examples: int) -> list[dict]:
    """Medians per side; speed = the reference side's seconds / the side's; step-1 loss of the first repeat."""
    rows = []
    for name, rs in runs.items():
        wall, cpu = median([r["seconds"] for r in rs]), median([r["cpu_seconds"] for r in rs])
        rows.append({"side": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "examples_per_cpu_s": round(n_examples / cpu, 3),
                     "step1_loss": [round(r["losses"][0], 5) for r in rs], "last_loss": [round(r["losses"][-1], 5) for r in rs]})
    ref = next((r for r in rows if r["side"] == REFERENCE), rows[0])
    for r in rows:
        r["speed_cpu"], r["speed_wall"] = round(ref["cpu_s"] / r["cpu_s"], 3), round(ref["wall_s"] / r["wall_s"], 3)
    return rows


def step1_close(runs: dict[str, list[dict]], rtol: float = 1e-3) -> bool | None:
    """Ours' and Trainer-on-the-same-batches' step-1 losses agree (per repeat), or None when one side did not run."""
    if "ours" not in runs or REFERENCE not in runs:
        return None
    return all(math.isclose(o["losses"][0], t["losses"][0], rel_tol=rtol) for o, t in zip(runs["ours"], runs[REFERENCE]))


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="question_type", help="a default-suite task in gen_tasks.PROMPTS, or 'headline'")
    p.add_argument("--rows", type=int, default=64, help="train rows (one epoch)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--sides", default=",".join(SIDES))
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None) -> None:
    a = parse(argv)
    setup(a.threads)
    base, tok, _ = load_smollm2()
    spec, data = headline_task(8, a.rows) if a.task == "headline" else choice_task(a.task, 8, a.rows)
    ctx = {"base": base, "tok": tok, "spec": spec, "ds": data["train"]}
    names = a.sides.split(",")
    warm = argparse.Namespace(**{**vars(a), "rows": 2 * a.batch})
    for name in names:  # warm-up (excluded): kernels, tokenizer, Trainer/accelerate imports
        one(name, {**ctx, "ds": ctx["ds"].select(range(2 * a.batch))}, warm, 0)
    runs = {n: [] for n in names}
    for i in range(a.repeats):
        for name in (names if i % 2 == 0 else names[::-1]):
            runs[name].append(one(name, ctx, a, 42 + i))
            r = runs[name][-1]
            print(f"repeat {i} {name}: {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU, step-1 loss {r['losses'][0]:.5f}", flush=True)
    rows, close = summarise(runs, len(ctx["ds"])), step1_close(runs)
    print(f"\n{a.task}: {len(ctx['ds'])} train rows, batch {a.batch}, 1 epoch, threads {a.threads}; step-1 loss close: {close}")
    print(f"| side | median wall s | median CPU s | examples per CPU s | speed vs {REFERENCE} (CPU) | (wall) | step-1 loss |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} | {r['wall_s']} | {r['cpu_s']} | {r['examples_per_cpu_s']} | {r['speed_cpu']}x | {r['speed_wall']}x | {r['step1_loss']} |")
    write_json(a.json, {"benchmark": "generative_finetune", "machine": machine(), "args": vars(a), "step1_loss_close": close,
                        "rows": rows, "runs": runs})


if __name__ == "__main__":
    main()
