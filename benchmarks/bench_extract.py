"""Feature extraction: the project's capture (hooks, masked means, Grams) vs a bare forward, in one run.

    .venv/bin/python benchmarks/bench_extract.py [--k 100] [--repeats 15] [--threads 1] [--json out.json]

Both sides run the packaged MiniLM (no LoRA, eval, no_grad) over the same pre-tokenised batches: the
k training rows that `osrm extract-features` samples (stages.extract_features.sample_indices), batch
32 (osrm.batch_size), max_length 64, padded to the longest row of the batch.

- **bare**: `model(**inputs)` only.
- **capture**: osrm_core.features.capture on the q+v inputs, `new_batch(attention_mask)` then the
  forward — what stages/extract_features.py `collect` does (per-sample masked means, float64 token
  Gram, token count; q and v of one block read the same tensor and are computed once).
- **capture, no Gram**: the same without the Gram (`keep_gram=False`), to show what the Gram costs.

Reported: median seconds of a full pass per side over alternating repeats (one warm-up pass each
excluded) and rows/s; "vs bare" = bare seconds / side seconds (the goal: capture >= 0.9).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench_finetune import machine, median, setup, write_json


def batches(tok, ds, fields, idx, batch: int, max_length: int) -> list[dict]:
    from osrm_core.batching import iterate

    return [inputs for inputs, _ in iterate(tok, ds.select(idx), fields, batch, max_length)]


@torch.no_grad()
def bare(model, bs: list[dict], names: list[str]) -> float:
    start = time.perf_counter()
    for inputs in bs:
        model(**inputs)
    return time.perf_counter() - start


def capturing(keep_gram: bool):
    @torch.no_grad()
    def run(model, bs: list[dict], names: list[str]) -> float:
        from osrm_core.features import capture

        start = time.perf_counter()
        with capture(model, names, include_padding=False, keep_gram=keep_gram) as cap:
            for inputs in bs:
                cap.new_batch(inputs["attention_mask"])
                model(**inputs)
        return time.perf_counter() - start

    return run


SIDES = {"bare": bare, "capture": capturing(True), "capture, no Gram": capturing(False)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="movie_sentiment")
    p.add_argument("--k", type=int, default=100, help="samples (osrm.k)")
    p.add_argument("--batch", type=int, default=32, help="osrm.batch_size")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--blocks", default="qv")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    setup(a.threads)
    from osrm_core.backbones import load_spec
    from osrm_core.features import target_module_names
    from osrm_core.models import load_classifier, load_tokenizer
    from osrm_core.tasks import load_task
    from stages.extract_features import sample_indices

    bb = load_spec("minilm")
    tok = load_tokenizer(bb)
    spec, data = load_task("default", a.task, max_train=600)
    idx = sample_indices(len(data["train"]), a.k, 42)
    bs = batches(tok, data["train"], spec.text_fields, idx, a.batch, a.max_length)
    model = load_classifier(bb, spec.num_labels)
    names = target_module_names(model, bb.target_suffixes(a.blocks))
    times = {n: [] for n in SIDES}
    for n, fn in SIDES.items():
        fn(model, bs, names)  # warm-up, excluded
    order = list(SIDES)
    for i in range(a.repeats):
        for n in (order if i % 2 == 0 else order[::-1]):
            times[n].append(SIDES[n](model, bs, names))
    base = median(times["bare"])
    rows = [{"side": n, "median_s": round(median(t), 4), "rows_per_s": round(len(idx) / median(t), 1),
             "vs_bare": round(base / median(t), 3)} for n, t in times.items()]
    tokens = int(sum(int(b["attention_mask"].sum()) for b in bs))
    print(f"{a.task}: k={len(idx)} rows ({tokens} tokens), batch {a.batch}, {len(names)} hooked modules, threads {a.threads}")
    print("| side | median s | rows/s | vs bare |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} | {r['median_s']} | {r['rows_per_s']} | {r['vs_bare']}x |")
    write_json(a.json, {"benchmark": "extract", "machine": machine(), "args": vars(a), "tokens": tokens, "rows": rows, "times": times})


if __name__ == "__main__":
    main()
