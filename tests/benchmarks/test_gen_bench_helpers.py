"""The generative benchmarks' helpers (not timed): the baselines compute what ours computes, on a tiny Llama."""

from __future__ import annotations

import sys
from pathlib import Path

import datasets
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_gen_finetune  # noqa: E402  (a script folder, not a package)
import bench_gen_scoring  # noqa: E402
import gen_tasks  # noqa: E402

from osrm_core.kinds.generative import Generative  # noqa: E402
from osrm_core.tasks.spec import Generation, TaskSpec  # noqa: E402
from tests.generative.tiny_lm import save_tiny_llama, tiny_tokenizer  # noqa: E402

CHOICES = ("negative", "positive")
SPEC = TaskSpec("sentiment", ("review",), 2, "accuracy", CHOICES,
                generation=Generation(prompt="review : {review} sentiment :", target="label", choices=CHOICES))
FREE = TaskSpec("colour", ("review",), 0, "exact_match", generation=Generation(prompt="review : {review} colour ?", target="label"))
REVIEWS = ["the film is good", "the book is very bad", "the meal is poor", "the show is very great", "the trip is fine"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("tiny")
    save_tiny_llama(folder)
    left = tiny_tokenizer()
    left.padding_side = "left"
    return AutoModelForCausalLM.from_pretrained(folder).eval(), tiny_tokenizer(), left


def test_in_dataset_order_inverts_the_batch_order():
    assert gen_tasks.in_dataset_order(["c", "a", "b"], [2, 0, 1]) == ["a", "b", "c"]


def test_trainer_rows_and_collator_give_ours_training_batches(tiny):
    from transformers import DataCollatorForSeq2Seq

    _, tok, _ = tiny
    ds = datasets.Dataset.from_dict({"review": REVIEWS, "label": [1, 0, 0, 1, 1]})
    order = [3, 0, 4, 1, 2]
    ours = list(Generative().train_batches(tok, ds, SPEC, 2, 64, order))
    rows = gen_tasks.completion_rows(tok, ds, SPEC).select(order)
    collate = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    for k, (inputs, labels) in enumerate(ours):
        theirs = collate([rows[i] for i in range(2 * k, min(2 * k + 2, len(order)))])
        assert torch.equal(theirs["input_ids"], inputs["input_ids"]) and torch.equal(theirs["labels"], labels)
        assert torch.equal(theirs["attention_mask"], inputs["attention_mask"])


def test_plain_choice_loop_scores_what_ours_scores(tiny):
    model, tok, _ = tiny
    data = {"test": datasets.Dataset.from_dict({"review": REVIEWS, "label": [1, 0, 0, 1, 1]})}
    ctx = {"ll_spec": SPEC, "ll_data": data, "tok": tok, "max_length": 64, "model": model}
    ours = bench_gen_scoring.ours_choices(ctx)
    plain = bench_gen_scoring.plain_choices(model, tok, [f"review : {r} sentiment :" for r in REVIEWS], list(CHOICES))
    torch.testing.assert_close(plain, ours, atol=1e-4, rtol=0)


def test_recorded_continuations_equal_the_generate_loop(tiny):
    model, tok, left = tiny
    data = {s: datasets.Dataset.from_dict({"review": REVIEWS, "label": ["red", "blue green", "red", "gold", "white"]})
            for s in ("train", "test")}
    ctx = {"gen_spec": FREE, "gen_data": data, "tok": tok, "left_tok": left, "max_length": 64, "model": model,
           "max_new_tokens": 3, "gen_prompts": [f"review : {r} colour ?" for r in REVIEWS]}
    ours, loop = bench_gen_scoring.ours_generate(ctx), bench_gen_scoring.loop_generate(ctx)
    assert len(ours) == len(REVIEWS) and ours == loop
    assert bench_gen_scoring.same("exact_match", loop, ours) == {"equal_outputs": 1.0}


def test_speed_ratios_and_step1_check():
    runs = {"ours": [{"seconds": 4.0, "cpu_seconds": 2.0, "losses": [3.0, 1.0]}],
            "trainer (same batches)": [{"seconds": 8.0, "cpu_seconds": 3.0, "losses": [3.001, 1.2]}]}
    rows = {r["side"]: r for r in bench_gen_finetune.summarise(runs, 60)}
    assert rows["ours"]["speed_cpu"] == 1.5 and rows["ours"]["speed_wall"] == 2.0 and rows["ours"]["examples_per_cpu_s"] == 30.0
    assert bench_gen_finetune.step1_close(runs) is True
    assert bench_gen_finetune.step1_close({**runs, "ours": [{"losses": [2.0]}]}) is False
    times = {"ours": {"wall": [2.0], "cpu": [1.0]}, "plain loop": {"wall": [3.0], "cpu": [2.5]}}
    table = {r["side"]: r for r in bench_gen_scoring.rows_of(times, {"ours": {}, "plain loop": {}}, 10)}
    assert table["plain loop"]["ours_speedup_cpu"] == 2.5 and table["ours"]["rows_per_cpu_s"] == 10.0


def test_label_likelihood_run_on_validation_rows_sums_its_tasks(tiny):
    """run_label_likelihood as the benchmark runs it on the suite's validation rows (split `ll_split`): per task and
    summed over tasks, the plain loop's scores agree with ours."""
    model, tok, left = tiny
    ds = datasets.Dataset.from_dict({"review": REVIEWS, "label": [1, 0, 0, 1, 1]})
    ctx = {"model": model, "tok": tok, "left_tok": left, "max_length": 64, "ll_spec": SPEC, "ll_data": {"validation": ds},
           "ll_split": "validation", "ll_prompts": [f"review : {r} sentiment :" for r in REVIEWS]}
    saved = []
    result = bench_gen_scoring.run_label_likelihood({"a": ctx, "b": bench_gen_scoring.first_rows(ctx, 3)}, 2, saved.append)
    assert [s["completed_repeats"] for s in saved] == [1, 2]
    assert {t: (v["rows"], v["sequences"]) for t, v in result["tasks"].items()} == {"a": (5, 10), "b": (3, 6)}
    every = {r["side"]: r for r in result["all_tasks"]["table"]}
    assert result["all_tasks"]["rows"] == 8 and every["plain loop"]["close"] and every["plain loop"]["argmax_agreement"] == 1.0
    assert all(len(v[n]["cpu"]) == 2 for v in result["times"].values() for n in v) and every["ours"]["cpu_s"] > 0
    agree = {"a": {"max_abs_diff": 1e-5, "close": True, "argmax_agreement": 1.0},
             "b": {"max_abs_diff": 3e-5, "close": False, "argmax_agreement": 0.5}}
    assert bench_gen_scoring.combined(agree, {"a": 3, "b": 1}) == {"max_abs_diff": 3e-5, "close": False, "argmax_agreement": 0.875}
