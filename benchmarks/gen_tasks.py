"""Generative tasks for the generative benchmarks, made from the default suite's texts, and their shared helpers.

- choice_task: a classification task of the default suite written as text, its label words as `choices`
  (scored by label likelihood; trained on the label word + EOS);
- suite_choice_task: a task with choices of the packaged generative suite (configs/suites/generative.yaml) as
  `osrm evaluate` loads it, its first validation rows;
- headline_task: a BBC headline from its lead sentence (the matching rows of `headline_match`), free text
  scored by exact match;
- completion_rows: what a Hugging Face `Trainer` user feeds a completion-only fine-tune (input_ids, labels with
  -100 on the prompt), tokenised the way such a user writes it.
"""

from __future__ import annotations

from typing import Sequence

import datasets

from osrm_core.generative.batches import IGNORE
from osrm_core.tasks.spec import Generation, TaskSpec

#: prompt template of each default-suite task written as text (its one text column is `sentence`)
PROMPTS = {"question_type": "Question: {sentence}\nAnswer type:", "movie_sentiment": "Review: {sentence}\nVerdict:",
           "news_topic": "Text: {sentence}\nTopic:"}


def choice_task(name: str, test_rows: int, train_rows: int | None = None) -> tuple[TaskSpec, dict]:
    """(spec, {train, test}) of default-suite task `name` as a generative task with its label words as choices."""
    from osrm_pipeline.suites import load_task

    base, data = load_task("default", name, max_train=train_rows, max_eval=test_rows)
    gen = Generation(prompt=PROMPTS[name], target="label", choices=base.label_names)
    spec = TaskSpec(name, ("sentence",), len(base.label_names), base.metric, base.label_names, base.description, gen)
    return spec, {"train": data["train"], "test": data["test"]}


#: the packaged generative suite's tasks with choices that the label-likelihood benchmark scores by default
SUITE_CHOICE_TASKS = ("question_type", "movie_sentiment", "sms_spam")


def suite_choice_task(name: str, rows: int, split: str = "validation") -> tuple[TaskSpec, dict]:
    """(spec, {split: its first `rows` rows}) of task `name` of the packaged generative suite, loaded as a pipeline
    on `suite: generative` loads it (same split seed, same rows)."""
    from osrm_pipeline.suites import load_task

    spec, data = load_task("generative", name, max_eval=rows)
    if not spec.label_names:
        raise ValueError(f"task '{name}' of the generative suite has no choices: label likelihood needs some")
    return spec, {split: data[split]}


def headline_task(test_rows: int, train_rows: int | None = None) -> tuple[TaskSpec, dict]:
    """(spec, {train, test}): free text, a headline (column `label`) from its article's lead sentence."""
    from osrm_pipeline.suites import load_task

    _, data = load_task("default", "headline_match")
    split = {}
    for name, n in (("train", train_rows), ("test", test_rows)):
        rows = [r for r in data[name] if r["label"] == 1][:n]  # label 1: the sentence is the headline's story
        split[name] = datasets.Dataset.from_dict({"sentence": [r["sentence"] for r in rows], "label": [r["headline"] for r in rows]})
    gen = Generation(prompt="Article: {sentence}\nHeadline:", target="label")
    return TaskSpec("headline", ("sentence",), 0, "exact_match", (), "headline from its lead sentence", gen), split


def in_dataset_order(values: Sequence, order: Sequence[int]) -> list:
    """Values listed in batch order (values[k] belongs to row order[k]) put back into dataset order."""
    out = [None] * len(order)
    for k, row in enumerate(order):
        out[row] = values[k]
    return out


def completion_rows(tokenizer, ds, spec: TaskSpec) -> datasets.Dataset:
    """Rows {input_ids: prompt + separator + target + EOS, labels: the same with the prompt set to -100}, tokenised
    with `datasets.map` as a Trainer user writes it (independently of osrm_core.generative.encode)."""
    gen, eos = spec.generation, tokenizer.eos_token_id
    targets = [spec.label_names[i] for i in ds["label"]] if spec.label_names else list(ds["label"])
    raw = datasets.Dataset.from_dict({"prompt": [gen.prompt.format(**row) for row in ds],
                                      "completion": [gen.separator + t for t in targets]})

    def tokenise(batch: dict) -> dict:
        prompts = tokenizer(batch["prompt"])["input_ids"]
        completions = tokenizer(batch["completion"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [p + c + [eos] for p, c in zip(prompts, completions)],
                "labels": [[IGNORE] * len(p) + c + [eos] for p, c in zip(prompts, completions)]}

    return raw.map(tokenise, batched=True, remove_columns=["prompt", "completion"])


def load_smollm2():
    """(model float32 eval, tokenizer as the project loads it, a copy padding on the left for generation)."""
    from osrm_core.models import load_causal_lm, load_tokenizer
    from osrm_pipeline.backbone_registry import load_spec

    bb = load_spec("smollm2")
    left = load_tokenizer(bb)
    left.padding_side = "left"
    return load_causal_lm(bb), load_tokenizer(bb), left
