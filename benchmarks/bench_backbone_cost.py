"""Fine-tuning cost of a backbone relative to the packaged MiniLM, measured in one run (a ratio).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_backbone_cost.py --backbone mpnet \
        [--rows 256] [--repeats 3] [--json benchmarks/results/backbone_cost_mpnet.json]

Each side is `osrm finetune`'s loop as benchmarks/bench_finetune.py times it ("ours": PEFT LoRA r 8 on q+v, head
trained, length-grouped batches of 16 tokenised on the fly, AdamW, linear warm-up, max_length 64, one validation
pass at the end of the epoch) on the same rows of one default-suite task; only the backbone differs. One torch
thread; timed on process CPU seconds (robust to a loaded machine), the model load excluded; one short warm-up per
side excluded; the repeats alternate the order of the sides and repeat i uses seed 42+i on both.
"""

from __future__ import annotations

import argparse

from bench_finetune import machine, median, one, setup, write_json


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="mpnet", help="the backbone compared with minilm (a configs/backbones name)")
    p.add_argument("--task", default="movie_sentiment")
    p.add_argument("--rows", type=int, default=256, help="train rows (one epoch)")
    p.add_argument("--eval-rows", type=int, default=32, help="validation rows (one pass per epoch, timed)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None) -> None:
    a = parse(argv)
    setup(a.threads)
    from osrm_core.models import load_tokenizer
    from osrm_pipeline.backbone_registry import load_spec
    from osrm_pipeline.suites import load_task

    run = argparse.Namespace(epochs=1, lr=1e-3, batch=16, warmup=0.06, max_length=64, threads=a.threads)
    spec, data = load_task("default", a.task, max_train=a.rows, max_eval=a.eval_rows)
    sides = {name: load_spec(name) for name in ("minilm", a.backbone)}
    toks = {name: load_tokenizer(bb) for name, bb in sides.items()}
    warm = {"train": data["train"].select(range(min(32, a.rows))), "validation": data["validation"].select(range(8))}
    for name, bb in sides.items():  # warm-up (excluded); also unpacks a `parts:` source once
        one("ours", bb, toks[name], spec, warm, run, 0)
    runs = {name: [] for name in sides}
    for i in range(a.repeats):
        for name in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
            r = one("ours", sides[name], toks[name], spec, data, run, 42 + i)
            runs[name].append(r)
            print(f"repeat {i} {name}: {r['cpu_seconds']:.1f} s CPU, {r['seconds']:.1f} s wall", flush=True)
    cpu = {name: median([r["cpu_seconds"] for r in rs]) for name, rs in runs.items()}
    rows = {name: {"cpu_s": round(c, 2), "examples_per_cpu_s": round(a.rows / c, 2)} for name, c in cpu.items()}
    ratio = round(cpu[a.backbone] / cpu["minilm"], 2)
    print(f"{a.task}: {a.rows} train rows x 1 epoch + {a.eval_rows} validation rows, threads {a.threads}")
    for name, row in rows.items():
        print(f"{name}: median {row['cpu_s']} CPU s, {row['examples_per_cpu_s']} train examples per CPU s")
    print(f"{a.backbone} / minilm CPU time: {ratio}x")
    write_json(a.json, {"benchmark": "backbone_cost", "machine": machine(), "args": vars(a), "rows": rows,
                        "ratio_cpu": ratio, "runs": runs})


if __name__ == "__main__":
    main()
