"""LoRA fine-tuning: the project's loop vs Hugging Face `Trainer` + PEFT, timed in one run (a ratio).

    .venv/bin/python benchmarks/bench_finetune.py [--rows 600] [--repeats 3] [--threads 1] [--json out.json]

Both sides fine-tune the packaged MiniLM with the same LoRA (PEFT, r=8 on q+v, head trained), the same
initial weights (seeded before building), rows, batch 16, epochs, lr, linear schedule with 6 % warm-up,
AdamW without weight decay, clipping 1.0, max_length 64, validation every epoch, and torch thread count.

- **ours**: osrm_core.lora.attach_lora + length_grouped batches tokenised on the fly + Stepper/train,
  grouped by token count, validation each epoch with token-length-sorted batches of 32 (what `osrm finetune` does).
- **trainer**: `datasets.map` tokenisation + `Trainer` with `DataCollatorWithPadding` (pads to the
  longest row of a random batch), its default optimiser (`adamw_torch_fused`), `eval_strategy=epoch`.
- Apples-to-apples variants: ours with a plain shuffled order (same padding as the Trainer default),
  and Trainer with `train_sampling_strategy="group_by_length"` (grouped by token count, like ours).

Timed: from data preparation to the end of training incl. the per-epoch validation (model loading
excluded on both sides), as wall and as process-CPU seconds (with one torch thread the CPU time is the
work done, robust to a loaded machine). One short warm-up of each side is excluded; the repeats alternate sides, and
repeat i uses seed 42+i on every side, so the score spread over repeats shows the seed noise.
Shared helpers (`machine`, `median`, `write_json`) are reused by bench_extract.py and bench_scoring.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

FIELDS_NOTE = "movie_sentiment (default suite): one text field, 2 labels, accuracy"


# --- helpers shared by the bench_* scripts -------------------------------------------------------

def machine() -> dict:
    """Where and when: CPU model, core count, torch threads, versions, date (for the JSON)."""
    import transformers

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"date": dt.date.today().isoformat(), "cpu": model, "nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def timed(fn, *args) -> tuple[float, float]:
    """(wall s, process CPU s) of fn(*args). With one torch thread the CPU time is the work done, however
    long the process waited for a core on a shared machine; the wall time includes that wait."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def write_json(path: str | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {path}")


def setup(threads: int) -> None:
    """Offline, quiet, and the same torch thread count for every side."""
    from osrm_core.models import offline_env

    offline_env()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(threads)


# --- the two fine-tuning sides ----------------------------------------------------------------------

def build(bb, num_labels: int, seed: int):
    """MiniLM classifier + PEFT LoRA (r=8, alpha 16, q+v, head trained), identical for the same seed."""
    from osrm_core.lora import attach_lora
    from osrm_core.models import head_module_names, load_classifier

    torch.manual_seed(seed)
    model = load_classifier(bb, num_labels)
    return attach_lora(model, bb.target_suffixes("qv"), head_module_names(model), rank=8, alpha=16.0)


def validation_score(model, tok, spec, ds, max_length: int) -> float:
    """The project's evaluator: token-length-sorted batches of 32, osrm_core.train.predict, the task's metric."""
    from osrm_core.batching import iterate, length_sorted
    from osrm_core.metrics import compute, predictions
    from osrm_core.train import predict

    order = length_sorted(tok, ds, spec.text_fields, max_length)
    logits = predict(model, iterate(tok, ds, spec.text_fields, 32, max_length, order))
    labels = torch.as_tensor(list(ds["label"]))[order].numpy()
    return compute(spec.metric, predictions(logits.numpy(), spec.is_regression), labels)["score"]


def run_ours(model, tok, spec, data, a, seed: int, grouped: bool) -> dict:
    from osrm_core.batching import iterate, length_grouped, shuffled, token_lengths
    from osrm_core.train import LoopHooks, LoopState, Stepper, linear_warmup_schedule, train

    ds, b = data["train"], a.batch
    start, cpu = time.perf_counter(), time.process_time()
    steps = math.ceil(len(ds) / b)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.0)
    stepper = Stepper(model, opt, linear_warmup_schedule(opt, steps * a.epochs, a.warmup), 1)
    lengths = token_lengths(tok, ds, spec.text_fields, a.max_length)

    def batches(epoch: int):
        order = length_grouped(lengths, b, seed, epoch) if grouped else shuffled(len(ds), seed, epoch)
        return iterate(tok, ds, spec.text_fields, b, a.max_length, order)

    hooks = LoopHooks(evaluate=lambda: {"score": validation_score(model, tok, spec, data["validation"], a.max_length)})
    state = train(model, batches, steps, a.epochs, stepper, hooks, LoopState(), log_every=10**9)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "history": [h["score"] for h in state.history]}


def run_trainer(model, tok, spec, data, a, seed: int, grouped: bool) -> dict:
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from osrm_core.metrics import compute, predictions

    start, cpu = time.perf_counter(), time.process_time()
    enc = {s: data[s].map(lambda r: tok(*[r[f] for f in spec.text_fields], truncation=True, max_length=a.max_length),
                          batched=True, remove_columns=list(spec.text_fields)) for s in ("train", "validation")}
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=a.batch, per_device_eval_batch_size=32,
                                 num_train_epochs=a.epochs, learning_rate=a.lr, lr_scheduler_type="linear",
                                 warmup_steps=a.warmup, weight_decay=0.0, max_grad_norm=1.0, eval_strategy="epoch",
                                 save_strategy="no", logging_strategy="no", report_to="none", use_cpu=True, seed=seed,
                                 data_seed=seed, disable_tqdm=True, label_names=["labels"],
                                 train_sampling_strategy="group_by_length" if grouped else "random")
        metric = lambda p: {"score": compute(spec.metric, predictions(p.predictions, spec.is_regression), p.label_ids)["score"]}
        trainer = Trainer(model=model, args=args, train_dataset=enc["train"], eval_dataset=enc["validation"],
                          data_collator=DataCollatorWithPadding(tok), compute_metrics=metric)
        t_train = time.perf_counter()
        trainer.train()
        end, cpu_end = time.perf_counter(), time.process_time()
    history = [h["eval_score"] for h in trainer.state.log_history if "eval_score" in h]
    return {"seconds": end - start, "cpu_seconds": cpu_end - cpu, "train_call_seconds": end - t_train, "history": history}


SIDES = {  # name -> (runner, length-grouped batches?)
    "ours": (run_ours, True),
    "trainer": (run_trainer, False),
    "ours (shuffled; pad to longest)": (run_ours, False),
    "trainer (group_by_length)": (run_trainer, True),
}


def one(name: str, bb, tok, spec, data, a, seed: int) -> dict:
    fn, grouped = SIDES[name]
    model = build(bb, spec.num_labels, seed)
    res = fn(model, tok, spec, data, a, seed, grouped)
    res["final_score"] = validation_score(model, tok, spec, data["validation"], a.max_length)
    assert torch.get_num_threads() == a.threads, "a side changed the torch thread count"
    return res


def summarise(runs: dict[str, list[dict]], n_examples: int) -> list[dict]:
    """Medians per side; speed_* = the reference side's seconds / this side's (reference: Trainer default
    when it ran, else the first side)."""
    rows = []
    for name, rs in runs.items():
        wall, cpu = median([r["seconds"] for r in rs]), median([r["cpu_seconds"] for r in rs])
        scores = [r["final_score"] for r in rs]
        rows.append({"side": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "examples_per_cpu_s": round(n_examples / cpu, 2),
                     "final_scores": [round(s, 2) for s in scores], "mean_final_score": round(sum(scores) / len(scores), 2)})
    ref = next((r for r in rows if r["side"] == "trainer"), rows[0])
    for r in rows:
        r["reference"] = ref["side"]
        r["speed_cpu"] = round(ref["cpu_s"] / r["cpu_s"], 2)
        r["speed_wall"] = round(ref["wall_s"] / r["wall_s"], 2)
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"| side | median wall s | median CPU s | examples per CPU s | speed vs {rows[0]['reference']} (CPU) | (wall) "
             "| final val. score per seed | mean |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['side']} | {r['wall_s']} | {r['cpu_s']} | {r['examples_per_cpu_s']} | {r['speed_cpu']}x | "
                     f"{r['speed_wall']}x | {', '.join(map(str, r['final_scores']))} | {r['mean_final_score']} |")
    return "\n".join(lines)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="movie_sentiment")
    p.add_argument("--rows", type=int, default=600, help="train rows (the default pipeline's max_train)")
    p.add_argument("--eval-rows", type=int, default=150, help="validation rows (the default pipeline's max_eval)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sides", default="all", help="comma list of side names, or 'all' / 'default' (ours, trainer)")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None) -> None:
    a = parse(argv)
    setup(a.threads)
    from osrm_core.models import load_tokenizer
    from osrm_pipeline.backbone_registry import load_spec
    from osrm_pipeline.suites import load_task

    bb = load_spec("minilm")
    tok = load_tokenizer(bb)
    spec, data = load_task("default", a.task, max_train=a.rows, max_eval=a.eval_rows)
    names = list(SIDES)[:4] if a.sides == "all" else ["ours", "trainer"] if a.sides == "default" else a.sides.split(",")
    unknown = [n for n in names if n not in SIDES]
    if unknown:
        raise SystemExit(f"--sides: unknown {unknown}; use a comma list of {list(SIDES)}")
    warm = {"train": data["train"].select(range(min(32, a.rows))), "validation": data["validation"].select(range(8))}
    for name in names:  # warm-up (excluded): kernels, tokenizer, Trainer/accelerate imports
        one(name, bb, tok, spec, warm, argparse.Namespace(**{**vars(a), "epochs": 1}), 0)
    runs = {n: [] for n in names}
    for i in range(a.repeats):
        for name in (names if i % 2 == 0 else names[::-1]):  # alternate the order of the sides
            runs[name].append(one(name, bb, tok, spec, data, a, 42 + i))
            r = runs[name][-1]
            print(f"repeat {i} {name}: {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU, final score {r['final_score']:.2f}", flush=True)
    rows = summarise(runs, len(data["train"]) * a.epochs)
    print(f"\n{FIELDS_NOTE}; {len(data['train'])} train rows x {a.epochs} epochs, batch {a.batch}, threads {a.threads}")
    print(table(rows))
    write_json(a.json, {"benchmark": "finetune", "machine": machine(), "args": vars(a), "rows": rows, "runs": runs})


if __name__ == "__main__":
    main()
