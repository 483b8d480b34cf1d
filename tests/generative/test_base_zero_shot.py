"""The base model of a generative task is the prompted pretrained causal LM, zero-shot: `osrm evaluate --model base`
(and `osrm predict --model base`) run in a fresh workdir before any fine-tune, opening no adapter. A classification
task's base still takes its head from the reference arm's adapter and says in one line what is missing without it."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from tests.generative.tiny_lm import TASKS, write_project

# a classification task on the same rows and the same tiny Llama (a sequence classifier with a trained head)
POLARITY = {"name": "polarity", "loader": "files", "path": "data.jsonl", "text": ["review"], "label": "polarity"}


def test_evaluate_base_of_generative_tasks_needs_no_adapter(cli, tmp_path):
    config = write_project(tmp_path)
    res = cli("evaluate", "-c", config, "--model", "base")
    root = tmp_path / "runs"
    assert not (root / "adapters").exists()  # nothing was fine-tuned, nothing was opened
    out = root / "eval/seed42/base"
    metrics = json.loads((out / "metrics.json").read_text())
    assert str(out / "metrics.json") in res.output and metrics["model"] == "base"
    assert set(metrics["tasks"]) == {"sentiment", "topic", "colour"}
    assert set(metrics["tasks"]["sentiment"]) == {"accuracy", "f1", "score"} and set(metrics["tasks"]["colour"]) == {"token_f1", "score"}
    logits = load_file(out / "logits.safetensors")
    # per validation row (a task's rows whose text is also in test are dropped): the choices' scores, a row score
    assert {t: (x.shape[0] > 0, x.shape[1]) for t, x in logits.items()} == {"sentiment": (True, 2), "topic": (True, 3), "colour": (True, 1)}
    assert torch.isfinite(logits["sentiment"]).all() and (logits["sentiment"] <= 0).all()  # choice log-likelihoods
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["upstream"] == {}  # the backbone alone: no adapter the score depends on


def test_predict_base_of_a_generative_task_needs_no_adapter(cli, tmp_path):
    config = write_project(tmp_path)
    src, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"review": "the film is very good"}) + "\n" + json.dumps({"review": "the meal is bad"}) + "\n")
    cli("predict", "-c", config, "--model", "base", "--task", "sentiment", "--input", src, "--output", out)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in got] == [1, 2] and all(r["label"] in ("negative", "positive") for r in got)
    assert not (tmp_path / "runs/adapters").exists()


def test_base_of_a_classification_task_names_its_missing_head(cli, tmp_path):
    """In a suite mixing both kinds, the generative tasks need nothing and the classification task's head is named:
    one line, non-zero exit, the reference arm's adapter and the command that makes it; nothing is written."""
    config = write_project(tmp_path, tasks=[*TASKS, POLARITY])
    res = cli("evaluate", "-c", config, "--model", "base", ok=False)
    assert res.exit_code != 0
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    line = lines[0]
    assert "'polarity'" in line and "head" in line and "reference arm 'lora'" in line
    assert "osrm finetune --task polarity --arm lora --seed 42" in line
    assert not any(f"'{t['name']}'" in line for t in TASKS)  # the generative tasks need no head
    assert not (tmp_path / "runs/eval").exists()


def test_base_of_a_classification_task_borrows_the_reference_head(cli, tmp_path):
    """With the reference arm's adapter of the classification task in place, the mixed suite's base scores every
    task, and records that adapter (only) as what its scores depend on."""
    config = write_project(tmp_path, tasks=[*TASKS, POLARITY], finetune={"epochs": 1})
    cli("finetune", "-c", config, "--task", "polarity", "--arm", "lora")
    cli("evaluate", "-c", config, "--model", "base")
    root = tmp_path / "runs"
    assert sorted(p.name for p in (root / "adapters/seed42/lora").iterdir()) == ["polarity"]
    out = root / "eval/seed42/base"
    assert set(json.loads((out / "metrics.json").read_text())["tasks"]) == {"sentiment", "topic", "colour", "polarity"}
    adapter = json.loads((root / "adapters/seed42/lora/polarity/manifest.json").read_text())
    assert json.loads((out / "manifest.json").read_text())["upstream"] == {"polarity": adapter["content_hash"]}
