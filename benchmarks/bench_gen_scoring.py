"""Generative scoring: the project's path (`osrm evaluate` on a generative task) vs what a user would write, in one run.

    .venv/bin/python benchmarks/bench_gen_scoring.py [--mode exact_match|label_likelihood|both] [--rows 64]
        [--choice-rows 32] [--repeats 3] [--threads 1] [--json out.json]

Model: the packaged SmolLM2-135M-Instruct (configs/backbones/smollm2.yaml; the GGUF is unpacked once, outside
the timing), float32, one object for every side. Data: default-suite texts written as generative tasks
(gen_tasks.py): headlines from their lead sentence (free text, exact match) and the question type with its
6 label words as choices (label likelihood). Batch size: `evaluate.batch_size`'s default (32) on every side.

exact_match (greedy decoding, max_new_tokens = the longest train headline + 1 on every side):
- **ours**: the generative kind's eval_order (longest prompt first) + eval_batches (left-padded prompts) +
  predict (`model.generate` with the KV cache per batch, continuations decoded and scored);
- **generate loop**: prompts in dataset order, tokenizer(padding_side="left") per batch, `model.generate`;
- **pipeline**: `transformers.pipeline("text-generation", batch_size=32)`, return_full_text=False.
The decoded continuations of every side are checked equal to ours (stripped strings).

label_likelihood (log p(choice tokens | prompt) of each of the 6 choices):
- **ours**: eval_batches (every (row, choice) sequence of 32 // 6 rows left-padded in one forward that keeps
  only the choices' logits) + predict;
- **plain loop**: one forward per (row, choice), log-softmax of the logits at the choice's positions.
The (rows x choices) scores are checked close (atol 2e-3) and their argmax equal.

Tokenisation is timed on every side. Medians of process-CPU seconds (one torch thread: the work done, robust to
a loaded machine) and wall seconds over alternating repeats after one excluded warm-up pass each; "ours faster
by" = the other side's seconds / ours (goal >= 1.0).
"""

from __future__ import annotations

import argparse

import torch

from bench_finetune import machine, median, setup, timed, write_json
from gen_tasks import choice_task, headline_task, in_dataset_order, load_smollm2

from osrm_core.generative import encode
from osrm_core.kinds.generative import Generative
from osrm_pipeline.pipeline_config import EvaluateConfig

BATCH = EvaluateConfig.model_fields["batch_size"].default
KIND = Generative()


def recording(batches, texts: list[str]):
    """The prompt batches with their decoder wrapped to append every decoded continuation to `texts`."""
    for b in batches:
        decode = b.decoding.decode
        yield b._replace(decoding=b.decoding._replace(decode=lambda ids, d=decode: texts.append(d(ids)) or texts[-1]))


def ours_generate(ctx) -> list[str]:
    spec, data, tok = ctx["gen_spec"], ctx["gen_data"], ctx["tok"]
    order = KIND.eval_order(tok, data["test"], spec, ctx["max_length"])
    texts: list[str] = []
    KIND.predict(ctx["model"], recording(KIND.eval_batches(tok, data, "test", spec, BATCH, ctx["max_length"], order), texts))
    return in_dataset_order(texts, order)


@torch.no_grad()
def loop_generate(ctx) -> list[str]:
    prompts, tok, out = ctx["gen_prompts"], ctx["left_tok"], []
    for i in range(0, len(prompts), BATCH):
        x = tok(prompts[i:i + BATCH], return_tensors="pt", padding=True)
        ids = ctx["model"].generate(**x, max_new_tokens=ctx["max_new_tokens"], do_sample=False)
        out += tok.batch_decode(ids[:, x["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def pipeline_generate(ctx) -> list[str]:
    res = ctx["pipe"](ctx["gen_prompts"], max_new_tokens=ctx["max_new_tokens"], do_sample=False, return_full_text=False)
    return [r[0]["generated_text"] for r in res]


def ours_choices(ctx) -> torch.Tensor:
    spec, data, tok = ctx["ll_spec"], ctx["ll_data"], ctx["tok"]
    order = KIND.eval_order(tok, data["test"], spec, ctx["max_length"])
    scores = KIND.predict(ctx["model"], KIND.eval_batches(tok, data, "test", spec, BATCH, ctx["max_length"], order))
    return torch.stack(in_dataset_order(list(scores), order))


@torch.no_grad()
def plain_choices(model, tok, prompts: list[str], choices: list[str], separator: str = " ") -> torch.Tensor:
    """(rows x choices) log p(choice | prompt) by one forward per (row, choice), as a user would write it."""
    choice_ids = [tok(separator + c, add_special_tokens=False)["input_ids"] for c in choices]
    out = torch.empty(len(prompts), len(choices))
    for r, prompt in enumerate(prompts):
        p = tok(prompt)["input_ids"]
        for c, ids in enumerate(choice_ids):
            logits = model(torch.tensor([p + ids])).logits[0, len(p) - 1:-1]  # position l predicts token l + 1
            out[r, c] = logits.log_softmax(-1).gather(1, torch.tensor(ids)[:, None]).sum()
    return out


def loop_choices(ctx) -> torch.Tensor:
    return plain_choices(ctx["model"], ctx["left_tok"], ctx["ll_prompts"], list(ctx["ll_spec"].label_names),
                         ctx["ll_spec"].generation.separator)


MODES = {"exact_match": {"ours": ours_generate, "generate loop": loop_generate, "pipeline": pipeline_generate},
         "label_likelihood": {"ours": ours_choices, "plain loop": loop_choices}}


def same(mode: str, a, b) -> dict:
    """Agreement of a side's outputs with ours: equal stripped texts, or close scores and equal argmax."""
    if mode == "exact_match":
        return {"equal_outputs": sum(x.strip() == y.strip() for x, y in zip(a, b)) / len(a)}
    return {"max_abs_diff": float((a - b).abs().max()), "close": bool(torch.allclose(a, b, atol=2e-3, rtol=0)),
            "argmax_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean())}


def context(a) -> dict:
    from transformers import pipeline

    model, tok, left = load_smollm2()
    gen_spec, gen_data = headline_task(a.rows)
    ll_spec, ll_data = choice_task("question_type", a.choice_rows)
    longest = max(len(t) for t in encode.completion_ids(tok, gen_spec, encode.target_texts(gen_spec, gen_data["train"])))
    return {"model": model, "tok": tok, "left_tok": left, "max_length": a.max_length, "max_new_tokens": longest + 1,
            "gen_spec": gen_spec, "gen_data": gen_data, "gen_prompts": encode.prompt_texts(tok, gen_data["test"], gen_spec),
            "ll_spec": ll_spec, "ll_data": ll_data, "ll_prompts": encode.prompt_texts(tok, ll_data["test"], ll_spec),
            "pipe": pipeline("text-generation", model=model, tokenizer=left, batch_size=BATCH, device="cpu")}


def run_mode(mode: str, ctx, repeats: int) -> dict:
    sides = MODES[mode]
    outs = {n: fn(ctx) for n, fn in sides.items()}  # warm-up, excluded
    agree = {n: same(mode, outs[n], outs["ours"]) for n in sides}
    times = {n: {"wall": [], "cpu": []} for n in sides}
    names = list(sides)
    for i in range(repeats):
        for n in (names if i % 2 == 0 else names[::-1]):
            wall, cpu = timed(sides[n], ctx)
            times[n]["wall"].append(wall)
            times[n]["cpu"].append(cpu)
    return {"times": times, "agreement": agree, "rows": rows_of(times, agree, len(outs["ours"]))}


def rows_of(times: dict, agree: dict, n_rows: int) -> list[dict]:
    """Per side: median wall / CPU seconds, rows per CPU second, and ours' speed-up = side's median / ours'."""
    med = {n: {k: median(v) for k, v in t.items()} for n, t in times.items()}
    return [{"side": n, "wall_s": round(m["wall"], 3), "cpu_s": round(m["cpu"], 3), "rows_per_cpu_s": round(n_rows / m["cpu"], 2),
             "ours_speedup_cpu": round(m["cpu"] / med["ours"]["cpu"], 3), "ours_speedup_wall": round(m["wall"] / med["ours"]["wall"], 3),
             **agree[n]} for n, m in med.items()]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=[*MODES, "both"], default="both")
    p.add_argument("--rows", type=int, default=64, help="test rows of the exact-match task")
    p.add_argument("--choice-rows", type=int, default=32, help="test rows of the label-likelihood task")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    setup(a.threads)
    ctx = context(a)
    results = {}
    for mode in (list(MODES) if a.mode == "both" else [a.mode]):
        results[mode] = run_mode(mode, ctx, a.repeats)
        rows = a.rows if mode == "exact_match" else a.choice_rows
        print(f"\n{mode}: {rows} rows, batch {BATCH}, max_new_tokens {ctx['max_new_tokens']}, threads {a.threads}")
        print("| side | median wall s | median CPU s | rows per CPU s | ours faster by (CPU) | (wall) | agreement with ours |\n"
              "|---|---|---|---|---|---|---|")
        for r in results[mode]["rows"]:
            extra = {k: v for k, v in r.items() if k in results[mode]["agreement"][r["side"]]}
            print(f"| {r['side']} | {r['wall_s']} | {r['cpu_s']} | {r['rows_per_cpu_s']} | {r['ours_speedup_cpu']}x | "
                  f"{r['ours_speedup_wall']}x | {extra} |", flush=True)
    write_json(a.json, {"benchmark": "generative_scoring", "machine": machine(), "args": vars(a),
                        "max_new_tokens": ctx["max_new_tokens"], "results": results})


if __name__ == "__main__":
    main()
