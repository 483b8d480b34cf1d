"""Feature extraction: the project's capture (hooks, masked means, Grams) vs a bare forward, in one run.

    .venv/bin/python benchmarks/bench_extract.py [--k 100] [--repeats 15] [--threads 1] [--json out.json]

Both sides run the packaged MiniLM (no LoRA, eval, no_grad) over the same pre-tokenised batches: the
k training rows that `osrm extract-features` samples (stages.extract_features.sample_indices), batch
32 (osrm.batch_size), max_length 64, padded to the longest row of the batch.

- **bare**: `model(**inputs)` only.
- **capture**: osrm_core.features.capture on the q+v inputs, `new_batch(attention_mask)` then the
  forward — what stages/extract_features.py `collect` does (per-sample masked means, float64 token
  Gram, token count; q and v of one block read the same tensor and are computed once).
- **capture, float32 batch Gram (proposal)**: the capture with `batch_stats(gram_dtype=float32)`:
  each batch's Gram multiplied in float32 before it is widened to float64 (not what the stage does).

Reported: median wall and process-CPU seconds of a full pass per side over alternating repeats (one
warm-up pass each excluded); "vs bare" = bare seconds / side seconds (the goal: capture >= 0.9). With
one torch thread the CPU time is the work done and is robust to a loaded machine; wall time is not.
"""

from __future__ import annotations

import argparse

import torch

from bench_finetune import machine, median, setup, timed, write_json

from osrm_core.features import batch_stats  # bound here: `proposed` swaps the module attribute


def batches(tok, ds, fields, idx, batch: int, max_length: int) -> list[dict]:
    from osrm_core.batching import iterate

    return [inputs for inputs, _ in iterate(tok, ds.select(idx), fields, batch, max_length)]


@torch.no_grad()
def bare(model, bs: list[dict], names: list[str]) -> None:
    for inputs in bs:
        model(**inputs)


@torch.no_grad()
def capturing(model, bs: list[dict], names: list[str]):
    from osrm_core.features import capture

    with capture(model, names, include_padding=False) as cap:
        for inputs in bs:
            cap.new_batch(inputs["attention_mask"])
            model(**inputs)
    return cap


def batch_stats_fp32_gram(x: torch.Tensor, mask: torch.Tensor | None, include_padding: bool):
    """osrm_core.features.batch_stats with the proposal measured here: the batch's Gram multiplied in float32,
    then widened to float64 (the running sum over batches stays float64)."""
    return batch_stats(x, mask, include_padding, gram_dtype=torch.float32)


def proposed(model, bs: list[dict], names: list[str]):
    import osrm_core.features as features

    original, features.batch_stats = features.batch_stats, batch_stats_fp32_gram
    try:
        return capturing(model, bs, names)
    finally:
        features.batch_stats = original


SIDES = {"bare": bare, "capture": capturing, "capture, float32 batch Gram (proposal)": proposed}


def gram_difference(ref, new) -> float:
    """max over modules of max|G_new - G_ref| / max|G_ref| (the sample means must be identical)."""
    a, b = ref.canonical_stats(), new.canonical_stats()
    assert all(torch.equal(a[n].sample_means(), b[n].sample_means()) for n in a)
    return max(float((b[n].gram - a[n].gram).abs().max() / a[n].gram.abs().max()) for n in a)


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
    from osrm_core.features import target_module_names
    from osrm_core.models import load_classifier, load_tokenizer
    from osrm_pipeline.backbone_registry import load_spec
    from osrm_pipeline.suites import load_task
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
    gram_err = gram_difference(SIDES["capture"](model, bs, names), proposed(model, bs, names))
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
    print(f"proposal vs capture: max relative Gram difference {gram_err:.2e} (means identical)")
    write_json(a.json, {"benchmark": "extract", "machine": machine(), "args": vars(a), "tokens": tokens, "rows": rows,
                        "proposal_max_rel_gram_diff": gram_err, "times": times})


if __name__ == "__main__":
    main()
