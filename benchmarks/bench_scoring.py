"""Scoring: the project's path (`osrm evaluate`) vs a plain forward loop vs `transformers.pipeline`, in one run.

    .venv/bin/python benchmarks/bench_scoring.py [--rows 300] [--repeats 7] [--threads 1] [--json out.json]

All three score the same rows (a default-suite task's test split) with the same classifier object:
the packaged MiniLM with a rank-8 update on q+v put in by osrm_core.scoring.ClassifierPool (what
`osrm evaluate` scores for '<init>/individual') and a seeded random head; max_length 64, the same batch
size on every side (evaluate.batch_size's default, 32).

- **ours**: as stages/evaluate.py: ClassifierPool.get (W = W0 + delta, head copied), rows sorted by
  token count (osrm_core.batching.length_sorted), batches tokenised with `iterate`, osrm_core.train.predict,
  logits put back into dataset order.
- **plain loop**: tokenise a batch of rows at a time in dataset order (pad to longest), `model(**x)` under
  torch.no_grad.
- **pipeline**: `transformers.pipeline("text-classification", model=..., tokenizer=..., batch_size=32)`
  called on the list of texts with truncation at 64 tokens (the pipeline is built outside the timing).

Tokenisation is inside the timing on every side; the model load is not (the pool keeps the model, as
it does across the models `osrm evaluate` scores). Median wall and process-CPU seconds per full pass
over alternating repeats after one warm-up pass each; "ours faster by" = other side's seconds / ours
(goal: >= 1.0). With one torch thread the CPU time is the work done, robust to a loaded machine. The
argmax predictions of the three sides are checked to agree.
"""

from __future__ import annotations

import argparse

import torch

from bench_finetune import machine, median, setup, timed, write_json

from osrm_pipeline.config_sections import EvaluateConfig

BATCH = EvaluateConfig.model_fields["batch_size"].default  # what `osrm evaluate` uses unless told otherwise


def random_update(model, suffixes: list[str], rank: int, seed: int) -> dict[str, torch.Tensor]:
    """module -> B @ A (d_out x d_in), a rank-`rank` update like one LoRA adapter's."""
    from osrm_core.features import target_module_names

    g = torch.Generator().manual_seed(seed)
    named = dict(model.named_modules())
    out = {}
    for n in target_module_names(model, suffixes):
        d_out, d_in = named[n].weight.shape
        out[n] = (0.02 * torch.randn(d_out, rank, generator=g)) @ (torch.randn(rank, d_in, generator=g) / d_in ** 0.5)
    return out


def ours(ctx) -> torch.Tensor:
    from osrm_core.batching import iterate, length_sorted
    from osrm_core.train import predict

    model = ctx["pool"].get(ctx["spec"].num_labels, ctx["delta"], ctx["head"])
    order = length_sorted(ctx["tok"], ctx["ds"], ctx["spec"].text_fields, ctx["max_length"])
    logits = predict(model, iterate(ctx["tok"], ctx["ds"], ctx["spec"].text_fields, BATCH, ctx["max_length"], order))
    restore = torch.empty_like(logits)
    restore[torch.as_tensor(order)] = logits  # back to dataset order
    return restore.argmax(-1)


@torch.no_grad()
def plain(ctx) -> torch.Tensor:
    texts, model, out = ctx["texts"], ctx["model"], []
    for i in range(0, len(texts), BATCH):
        x = ctx["tok"](texts[i:i + BATCH], truncation=True, max_length=ctx["max_length"], padding=True, return_tensors="pt")
        out.append(model(**x).logits)
    return torch.cat(out).argmax(-1)


def pipe(ctx) -> torch.Tensor:
    res = ctx["pipe"](ctx["texts"], truncation=True, max_length=ctx["max_length"])
    return torch.as_tensor([ctx["model"].config.label2id[r["label"]] for r in res])


SIDES = {"ours": ours, "plain loop": plain, "pipeline": pipe}


def context(a) -> dict:
    from transformers import pipeline

    from osrm_core.models import head_module_names, load_classifier, load_tokenizer
    from osrm_core.scoring import ClassifierPool
    from osrm_pipeline.backbone_registry import load_spec
    from osrm_pipeline.suites import load_task

    bb = load_spec("minilm")
    tok = load_tokenizer(bb)
    spec, data = load_task("default", a.task)
    if len(spec.text_fields) != 1:
        raise SystemExit(f"--task {a.task}: the pipeline side takes single-text tasks only")
    ds = data[a.split].select(range(min(a.rows, len(data[a.split]))))
    pool = ClassifierPool(lambda n: load_classifier(bb, n))
    torch.manual_seed(0)
    fresh = load_classifier(bb, spec.num_labels)
    heads = head_module_names(fresh)
    head = {k: v.detach().clone() for k, v in fresh.named_parameters() if k.split(".")[0] in heads}
    delta = random_update(fresh, bb.target_suffixes("qv"), 8, 0)
    model = pool.get(spec.num_labels, delta, head)
    return {"pool": pool, "spec": spec, "delta": delta, "head": head, "tok": tok, "ds": ds, "max_length": a.max_length,
            "texts": list(ds[spec.text_fields[0]]), "model": model,
            "pipe": pipeline("text-classification", model=model, tokenizer=tok, batch_size=BATCH, device="cpu")}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="movie_sentiment")
    p.add_argument("--split", default="test")
    p.add_argument("--rows", type=int, default=300)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    setup(a.threads)
    ctx = context(a)
    preds = {n: fn(ctx) for n, fn in SIDES.items()}  # warm-up, excluded
    agree = {n: float((preds[n] == preds["ours"]).float().mean()) for n in SIDES}
    times = {n: {"wall": [], "cpu": []} for n in SIDES}
    order = list(SIDES)
    for i in range(a.repeats):
        for n in (order if i % 2 == 0 else order[::-1]):
            wall, cpu = timed(SIDES[n], ctx)
            times[n]["wall"].append(wall)
            times[n]["cpu"].append(cpu)
    med = {n: {k: median(v) for k, v in t.items()} for n, t in times.items()}
    rows = [{"side": n, "wall_s": round(m["wall"], 4), "cpu_s": round(m["cpu"], 4), "rows_per_cpu_s": round(len(ctx["texts"]) / m["cpu"], 1),
             "ours_speedup_cpu": round(m["cpu"] / med["ours"]["cpu"], 3), "ours_speedup_wall": round(m["wall"] / med["ours"]["wall"], 3),
             "argmax_agreement_with_ours": agree[n]} for n, m in med.items()]
    print(f"{a.task}/{a.split}: {len(ctx['texts'])} rows, batch {BATCH}, max_length {a.max_length}, threads {a.threads}")
    print("| side | median wall s | median CPU s | rows per CPU s | ours faster by (CPU) | (wall) | argmax agreement |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} | {r['wall_s']} | {r['cpu_s']} | {r['rows_per_cpu_s']} | {r['ours_speedup_cpu']}x | "
              f"{r['ours_speedup_wall']}x | {r['argmax_agreement_with_ours']:.3f} |")
    write_json(a.json, {"benchmark": "scoring", "machine": machine(), "args": vars(a), "rows": rows, "times": times})


if __name__ == "__main__":
    main()
