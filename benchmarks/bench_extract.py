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

Reported: median wall and process-CPU seconds of a full pass per side over alternating repeats (one
warm-up pass each excluded); "vs bare" = bare seconds / side seconds (the goal: capture >= 0.9). With
one torch thread the CPU time is the work done and is robust to a loaded machine; wall time is not.
"""

from __future__ import annotations

import argparse

import torch

from bench_finetune import machine, median, setup, timed, write_json


def batches(tok, ds, fields, idx, batch: int, max_length: int) -> list[dict]:
    from osrm_core.batching import iterate

    return [inputs for inputs, _ in iterate(tok, ds.select(idx), fields, batch, max_length)]


@torch.no_grad()
def bare(model, bs: list[dict], names: list[str]) -> None:
    for inputs in bs:
        model(**inputs)


def capturing(keep_gram: bool):
    @torch.no_grad()
    def run(model, bs: list[dict], names: list[str]) -> None:
        from osrm_core.features import capture

        with capture(model, names, include_padding=False, keep_gram=keep_gram) as cap:
            for inputs in bs:
                cap.new_batch(inputs["attention_mask"])
                model(**inputs)

    return run


SIDES = {"bare": bare, "capture": capturing(True), "capture, no Gram": capturing(False)}


def rows_of(times: dict, n_rows: int) -> list[dict]:
    """Medians per side; vs_bare_* = bare's median / the side's (throughput relative to the bare forward)."""
    med = {n: {k: median(v) for k, v in t.items()} for n, t in times.items()}
    return [{"side": n, "wall_s": round(m["wall"], 4), "cpu_s": round(m["cpu"], 4), "rows_per_cpu_s": round(n_rows / m["cpu"], 1),
             "vs_bare_cpu": round(med["bare"]["cpu"] / m["cpu"], 3), "vs_bare_wall": round(med["bare"]["wall"] / m["wall"], 3)}
            for n, m in med.items()]


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
    times = {n: {"wall": [], "cpu": []} for n in SIDES}
    for n, fn in SIDES.items():
        fn(model, bs, names)  # warm-up, excluded
    order = list(SIDES)
    for i in range(a.repeats):
        for n in (order if i % 2 == 0 else order[::-1]):
            wall, cpu = timed(SIDES[n], model, bs, names)
            times[n]["wall"].append(wall)
            times[n]["cpu"].append(cpu)
    rows = rows_of(times, len(idx))
    tokens = int(sum(int(b["attention_mask"].sum()) for b in bs))
    print(f"{a.task}: k={len(idx)} rows ({tokens} tokens), batch {a.batch}, {len(names)} hooked modules, threads {a.threads}")
    print("| side | median wall s | median CPU s | rows per CPU s | vs bare (CPU) | vs bare (wall) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} | {r['wall_s']} | {r['cpu_s']} | {r['rows_per_cpu_s']} | {r['vs_bare_cpu']}x | {r['vs_bare_wall']}x |")
    write_json(a.json, {"benchmark": "extract", "machine": machine(), "args": vars(a), "tokens": tokens, "rows": rows, "times": times})


if __name__ == "__main__":
    main()
