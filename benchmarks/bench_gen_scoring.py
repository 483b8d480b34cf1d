"""Generative scoring: the project's path (`osrm evaluate` on a generative task) vs what a user would write, in one run.

    .venv/bin/python benchmarks/bench_gen_scoring.py [--mode exact_match|label_likelihood|both] [--rows 64]
        [--choice-rows 64] [--choice-tasks question_type,movie_sentiment,sms_spam] [--repeats 3] [--threads 1]
        [--json out.json]

Model: the packaged SmolLM2-135M-Instruct (configs/backbones/smollm2.yaml; the GGUF is unpacked once, outside
the timing), float32, one object for every side. Data (gen_tasks.py): exact match writes headlines from their
lead sentence (default-suite texts, free text); label likelihood scores the first --choice-rows validation rows
of each of --choice-tasks of the packaged generative suite (configs/suites/generative.yaml, as `osrm evaluate`
loads them: question type with 6 label words, movie sentiment and SMS spam with 2). Batch size:
`evaluate.batch_size`'s default (32) on every side.

exact_match (greedy decoding, max_new_tokens = the longest train headline + 1 on every side):
- **ours**: the generative kind's eval_order (longest prompt first) + eval_batches (left-padded prompts) +
  predict (`model.generate` with the KV cache per batch, continuations decoded and scored);
- **generate loop**: prompts in dataset order, tokenizer(padding_side="left") per batch, `model.generate`;
- **pipeline**: `transformers.pipeline("text-generation", batch_size=32)`, return_full_text=False.
The decoded continuations of every side are checked equal to ours (stripped strings).

label_likelihood (log p(choice tokens | prompt) of each of a task's choices):
- **ours**: the generative kind's eval_order + eval_batches (every (row, choice) sequence of 32 // choices rows
  left-padded in one forward that keeps only the choices' logits) + predict: what `osrm evaluate` runs;
- **plain loop**: one forward per (row, choice) on prompt + choice tokens, log-softmax of the logits at the
  choice's positions, summed.
The (rows x choices) scores are checked close (atol 2e-3) and their argmax equal (outputs of the first repeat).
Per repeat every task is timed for each side in turn (the side order alternates between repeats); one excluded
warm-up per side and task on its first 2 rows; the JSON is rewritten after every repeat, so a stopped run keeps
the repeats it finished. "all tasks" sums a repeat's task times.

Tokenisation is timed on every side. Medians of process-CPU seconds (one torch thread: the work done, robust to
a loaded machine) and wall seconds over alternating repeats after an excluded warm-up; "ours faster by" = the
other side's seconds / ours (goal >= 1.0).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench_finetune import machine, median, setup, timed, write_json
from gen_tasks import SUITE_CHOICE_TASKS, headline_task, in_dataset_order, load_smollm2, suite_choice_task

from osrm_core.generative import encode
from osrm_core.kinds.generative import Generative
from osrm_pipeline.config_sections import EvaluateConfig

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
    spec, data, tok, split = ctx["ll_spec"], ctx["ll_data"], ctx["tok"], ctx.get("ll_split", "test")
    order = KIND.eval_order(tok, data[split], spec, ctx["max_length"])
    scores = KIND.predict(ctx["model"], KIND.eval_batches(tok, data, split, spec, BATCH, ctx["max_length"], order))
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


def context(a, model, tok, left) -> dict:
    """The exact-match mode's data and pipeline."""
    from transformers import pipeline

    gen_spec, gen_data = headline_task(a.rows)
    longest = max(len(t) for t in encode.completion_ids(tok, gen_spec, encode.target_texts(gen_spec, gen_data["train"])))
    return {"model": model, "tok": tok, "left_tok": left, "max_length": a.max_length, "max_new_tokens": longest + 1,
            "gen_spec": gen_spec, "gen_data": gen_data, "gen_prompts": encode.prompt_texts(tok, gen_data["test"], gen_spec),
            "pipe": pipeline("text-generation", model=model, tokenizer=left, batch_size=BATCH, device="cpu")}


def choice_contexts(a, model, tok, left) -> dict[str, dict]:
    """Per task of --choice-tasks: its first --choice-rows validation rows of the packaged generative suite."""
    out = {}
    for name in a.choice_tasks.split(","):
        spec, data = suite_choice_task(name, a.choice_rows)
        out[name] = {"model": model, "tok": tok, "left_tok": left, "max_length": a.max_length, "ll_spec": spec,
                     "ll_data": data, "ll_split": "validation", "ll_prompts": encode.prompt_texts(tok, data["validation"], spec)}
    return out


def first_rows(ctx: dict, n: int) -> dict:
    """A task context cut to its first n rows (the warm-up)."""
    split = ctx["ll_split"]
    return {**ctx, "ll_data": {split: ctx["ll_data"][split].select(range(min(n, len(ctx["ll_data"][split]))))},
            "ll_prompts": ctx["ll_prompts"][:n]}


def timed_out(fn, ctx) -> tuple[float, float, object]:
    """(wall s, process CPU s, fn's output) of fn(ctx)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(ctx)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def combined(agree: dict[str, dict], rows: dict[str, int]) -> dict:
    """One side's agreement over every task: the largest difference, all close, the row-weighted argmax agreement."""
    n = sum(rows.values())
    return {"max_abs_diff": max(a["max_abs_diff"] for a in agree.values()), "close": all(a["close"] for a in agree.values()),
            "argmax_agreement": round(sum(a["argmax_agreement"] * rows[t] for t, a in agree.items()) / n, 6)}


def run_label_likelihood(ctxs: dict[str, dict], repeats: int, save=lambda partial: None) -> dict:
    """Every task's (rows x choices) scores by each side, repeated; per task and summed over tasks."""
    sides, names = MODES["label_likelihood"], list(MODES["label_likelihood"])
    for ctx in ctxs.values():  # warm-up, excluded
        for fn in sides.values():
            fn(first_rows(ctx, 2))
    times = {t: {n: {"wall": [], "cpu": []} for n in sides} for t in ctxs}
    agree, rows = {}, {t: len(c["ll_prompts"]) for t, c in ctxs.items()}
    result = {}
    for i in range(repeats):
        for task, ctx in ctxs.items():
            outs = {}
            for n in (names if i % 2 == 0 else names[::-1]):
                wall, cpu, outs[n] = timed_out(sides[n], ctx)
                times[task][n]["wall"].append(wall)
                times[task][n]["cpu"].append(cpu)
                print(f"  repeat {i + 1}/{repeats} {task} {n}: {cpu:.2f} CPU s, {wall:.1f} wall s", flush=True)
            if i == 0:
                agree[task] = {n: same("label_likelihood", outs[n], outs["ours"]) for n in sides}
        total = {n: {k: [sum(times[t][n][k][r] for t in ctxs) for r in range(i + 1)] for k in ("wall", "cpu")} for n in sides}
        result = {"completed_repeats": i + 1, "times": times,
                  "tasks": {t: {"rows": rows[t], "choices": len(c["ll_spec"].label_names),
                                "sequences": rows[t] * len(c["ll_spec"].label_names),
                                "table": rows_of(times[t], agree[t], rows[t])} for t, c in ctxs.items()},
                  "all_tasks": {"rows": sum(rows.values()),
                                "sequences": sum(rows[t] * len(c["ll_spec"].label_names) for t, c in ctxs.items()),
                                "table": rows_of(total, {n: combined({t: agree[t][n] for t in ctxs}, rows) for n in sides},
                                                 sum(rows.values()))}}
        save(result)
    return result


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}\n| side | median wall s | median CPU s | rows per CPU s | ours faster by (CPU) | (wall) | agreement with ours |\n"
          "|---|---|---|---|---|---|---|")
    agreement_keys = ("equal_outputs", "max_abs_diff", "close", "argmax_agreement")
    for r in rows:
        extra = {k: v for k, v in r.items() if k in agreement_keys}
        print(f"| {r['side']} | {r['wall_s']} | {r['cpu_s']} | {r['rows_per_cpu_s']} | {r['ours_speedup_cpu']}x | "
              f"{r['ours_speedup_wall']}x | {extra} |", flush=True)


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
    p.add_argument("--choice-rows", type=int, default=64, help="validation rows of each label-likelihood task")
    p.add_argument("--choice-tasks", default=",".join(SUITE_CHOICE_TASKS),
                   help="comma-separated tasks with choices of the packaged generative suite")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    setup(a.threads)
    model, tok, left = load_smollm2()
    modes = list(MODES) if a.mode == "both" else [a.mode]
    started = time.time()
    payload = {"benchmark": "generative_scoring", "machine": machine(), "args": vars(a), "results": {}}

    def save(mode: str, result: dict) -> None:
        payload["results"][mode] = result
        payload["wall_s_total"] = round(time.time() - started, 1)
        write_json(a.json, payload)

    if "exact_match" in modes:
        ctx = context(a, model, tok, left)
        payload["max_new_tokens"] = ctx["max_new_tokens"]
        result = run_mode("exact_match", ctx, a.repeats)
        print_table(f"exact_match: {a.rows} rows, batch {BATCH}, max_new_tokens {ctx['max_new_tokens']}, threads {a.threads}",
                    result["rows"])
        save("exact_match", result)
    if "label_likelihood" in modes:
        ctxs = choice_contexts(a, model, tok, left)
        result = run_label_likelihood(ctxs, a.repeats, lambda partial: save("label_likelihood", partial))
        for task, t in result["tasks"].items():
            print_table(f"label_likelihood, {task}: {t['rows']} validation rows x {t['choices']} choices = {t['sequences']} "
                        f"sequences, batch {BATCH}, threads {a.threads}", t["table"])
        every = result["all_tasks"]
        print_table(f"label_likelihood, all tasks: {every['rows']} rows, {every['sequences']} sequences", every["table"])
    print(f"wall time {time.time() - started:.0f} s (model load excluded)")


if __name__ == "__main__":
    main()
