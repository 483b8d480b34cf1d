"""`osrm export` / `osrm predict` on a tiny BERT with random (untrained) adapters: the exported folders load in plain
transformers / PEFT and give `osrm evaluate`'s logits; predict reads JSONL/CSV; adapters carry no machine path."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import TINY_TASKS, Cli, tiny_pipeline
from tests.stages.test_sweep import fake_adapters

METHODS = {"ties": {"density": 0.5}, "tsv_m": {}, "emr": {}}
ZEROED = "bert.encoder.layer.0.attention.self.query"  # task 0's update is zero here: TSV-M keeps fewer components


def _zero_module(config: Path, arm: str, task: str, module: str) -> None:
    """Zero one module's lora_B in a task's adapter and re-seal its manifest (as if it had learnt nothing there)."""
    from osrm_pipeline.run import open_run
    from stages.io.artifacts import TaskAdapter
    from stages.io.tensors import save_file

    folder = open_run(config).layout.adapter(arm, task)
    weights = {k: v.clone() for k, v in load_file(folder / "adapter_model.safetensors").items()}  # not mmapped: the file is rewritten
    weights[f"base_model.model.{module}.lora_B.weight"].zero_()
    save_file(weights, folder / "adapter_model.safetensors")
    m = json.loads((folder / "manifest.json").read_text())
    TaskAdapter.seal(folder, m["config"], upstream={}, **{k: m[k] for k in ("backbone", "arm", "task", "init", "num_labels", "rank", "blocks")})


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_backbone):
    """(cli, config): fake lora adapters, merged with ties (dense), tsv_m (factors, ranks differ) and emr (per task), all
    scored on the test split; lora/individual scored too."""
    root = tmp_path_factory.mktemp("export")
    config = root / "pipeline.yaml"
    config.write_text(yaml.safe_dump(tiny_pipeline(root / "runs", tiny_backbone, merge={"methods": METHODS},
                                                   evaluate={"split": "test", "batch_size": 32})))
    fake_adapters(config, "lora", 7)
    _zero_module(config, "lora", TINY_TASKS[0], ZEROED)
    cli = Cli()
    cli("merge", "-c", config, "--arm", "lora", "--method", "all")
    cli("evaluate", "-c", config, "--model", "lora/merges", "--model", "lora/individual")
    return cli, config


def _eval_logits(config: Path, model: str) -> dict[str, torch.Tensor]:
    where = "individual/lora" if model == "lora/individual" else f"merged/{model}"
    return load_file(config.parent / f"runs/eval/seed42/{where}/logits.safetensors")


def _test_rows(config: Path, task: str):
    from osrm_pipeline.run import open_run

    spec, data = open_run(config).load_task(task)
    return spec, data["test"]


def _forward(model, tokenizer, texts: list[str]) -> torch.Tensor:
    enc = tokenizer(texts, truncation=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits.float()


def test_exported_task_folders_load_in_transformers_and_match_evaluate(setup, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cli, config = setup
    out = tmp_path / "ties"
    cli("export", "-c", config, "--model", "lora/ties", "--out", out, "--max-rank", "2")
    logits = _eval_logits(config, "lora/ties")
    for task in TINY_TASKS:
        spec, rows = _test_rows(config, task)
        model = AutoModelForSequenceClassification.from_pretrained(out / task).eval()
        got = _forward(model, AutoTokenizer.from_pretrained(out / task), list(rows["sentence"]))
        torch.testing.assert_close(got, logits[task], atol=1e-4, rtol=1e-4)
        assert model.config.problem_type == ("regression" if spec.is_regression else "single_label_classification")
        assert list(model.config.id2label.values()) == (["score"] if spec.is_regression else list(spec.label_names))
    assert "/" not in json.loads((out / TINY_TASKS[0] / "config.json").read_text()).get("_name_or_path", "")


def test_shared_adapter_truncation_error_is_recorded_and_exact(setup, tmp_path):
    """Dense ties truncated to rank 2: export.json's error per module is ||Δ - B A|| / ||Δ|| of the written factors."""
    from osrm_pipeline.run import open_run
    from stages.io.adapters import Adapter
    from stages.io.artifacts import Merged

    cli, config = setup
    out = tmp_path / "ties"
    cli("export", "-c", config, "--model", "lora/ties", "--out", out, "--max-rank", "2")
    report = json.loads((out / "export.json").read_text())["adapters"]["shared"]
    run = open_run(config)
    dense = Merged.read(run.layout.merged("lora", "ties"), "").deltas(TINY_TASKS[0])
    adapter = Adapter(out / "adapter")
    assert adapter.rank == 2 and set(report["per_module"]) == set(dense)
    for m, d in dense.items():
        err = float((d - adapter.delta(m)).norm() / d.norm())
        assert report["per_module"][m] == pytest.approx(err, rel=1e-3) and 0 < err < 1
    assert report["max_error"] == max(report["per_module"].values())
    assert set(load_file(out / "adapter/heads" / f"{TINY_TASKS[1]}.safetensors")) >= {"classifier.weight", "classifier.bias"}


def _peft_logits(config: Path, task: str, adapter: Path, head_from: Path | None) -> torch.Tensor:
    """Logits of the test split from PEFT: base classifier (+ a head file), then PeftModel.from_pretrained(adapter)."""
    from peft import PeftModel

    from osrm_core.apply import load_head
    from osrm_core.models import load_classifier
    from osrm_pipeline.run import open_run
    from stages.io.adapters import Adapter

    run = open_run(config)
    spec, rows = _test_rows(config, task)
    base = load_classifier(run.spec, spec.num_labels)
    if head_from is not None:
        load_head(base, Adapter(head_from).head())
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    return _forward(model, run.tokenizer, list(rows["sentence"]))


def test_tsv_m_adapter_with_different_ranks_loads_in_peft(setup, tmp_path):
    """TSV-M keeps fewer components where task 0's update is zero: the merged adapter (and the export's) need
    rank_pattern; PEFT then reproduces `osrm evaluate`'s logits."""
    cli, config = setup
    merged = config.parent / "runs/merged/seed42/lora/tsv_m"
    cfg = json.loads((merged / "adapter_config.json").read_text())
    ranks = {k: v.shape[0] for k, v in load_file(merged / "adapter_model.safetensors").items() if ".lora_A." in k}
    assert len(set(ranks.values())) == 2 and cfg["rank_pattern"], "the fixture must give modules of different ranks"
    assert cfg["base_model_name_or_path"] == "tiny-encoder"  # the spec's name, not the tmp folder
    logits = _eval_logits(config, "lora/tsv_m")
    adapters = fake_adapter_dir(config)
    out = tmp_path / "tsv"
    cli("export", "-c", config, "--model", "lora/tsv_m", "--out", out)
    for task in TINY_TASKS[:2]:  # PEFT computes W0 x + B (A x), evaluate (W0 + B A) x: float32 rounding apart
        torch.testing.assert_close(_peft_logits(config, task, merged, adapters / task), logits[task], atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(_peft_logits(config, task, out / "adapter", adapters / task), logits[task], atol=1e-3, rtol=1e-3)
    assert json.loads((out / "export.json").read_text())["adapters"]["shared"]["max_error"] == 0.0
    exported = json.loads((out / "adapter/adapter_config.json").read_text())  # zero-padded: one rank for serving stacks
    assert exported["rank_pattern"] == {} and exported["r"] == max(ranks.values())


def fake_adapter_dir(config: Path) -> Path:
    return config.parent / "runs/adapters/seed42/lora"


def test_per_task_exports_individual_and_emr(setup, tmp_path):
    """Per-task models export one adapter per task; an individual one (with its head) reproduces evaluate in PEFT."""
    cli, config = setup
    cli("export", "-c", config, "--model", "lora/individual", "--out", tmp_path / "ind")
    task = TINY_TASKS[1]
    got = _peft_logits(config, task, tmp_path / "ind/adapter" / task, None)
    torch.testing.assert_close(got, _eval_logits(config, "lora/individual")[task], atol=1e-3, rtol=1e-3)
    cli("export", "-c", config, "--model", "lora/emr", "--out", tmp_path / "emr", "--max-rank", "3")
    report = json.loads((tmp_path / "emr/export.json").read_text())
    assert report["per_task"] and set(report["adapters"]) == set(TINY_TASKS)
    assert all(0 < report["adapters"][t]["max_error"] < 1 for t in TINY_TASKS)
    assert json.loads((tmp_path / f"emr/adapter/{task}/adapter_config.json").read_text())["r"] == 3


def test_pipeline_loads_the_export_without_this_project(setup, tmp_path):
    """A fresh interpreter in isolated mode (no PYTHONPATH, no cwd on sys.path) runs pipeline('text-classification')."""
    cli, config = setup
    out = tmp_path / "ties"
    cli("export", "-c", config, "--model", "lora/ties", "--out", out)
    spec, rows = _test_rows(config, TINY_TASKS[1])
    texts = list(rows["sentence"])[:6]
    code = ("import json, sys\nfrom transformers import pipeline\n"
            f"p = pipeline('text-classification', model={str(out / TINY_TASKS[1])!r}, device='cpu')\n"
            f"print(json.dumps([r['label'] for r in p({texts!r}, truncation=True)]))\n"
            "assert not any(m.startswith(('osrm_core', 'osrm_pipeline', 'stages')) for m in sys.modules)\n")
    res = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    want = [spec.label_names[int(i)] for i in _eval_logits(config, "lora/ties")[TINY_TASKS[1]][:6].argmax(-1)]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == want


def test_predict_jsonl_and_csv_match_evaluate(setup, tmp_path):
    cli, config = setup
    logits = _eval_logits(config, "lora/ties")
    spec, rows = _test_rows(config, TINY_TASKS[1])
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "sentence": s}) + "\n" for i, s in enumerate(rows["sentence"])))
    cli("predict", "-c", config, "--model", "lora/ties", "--task", TINY_TASKS[1], "--input", src, "--output", tmp_path / "out.jsonl",
        "--batch-size", "5")
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [g["label_id"] for g in got] == logits[TINY_TASKS[1]].argmax(-1).tolist()
    assert got[0]["label"] == spec.label_names[got[0]["label_id"]] and sum(got[0]["probabilities"].values()) == pytest.approx(1)
    reg, reg_rows = _test_rows(config, "sentiment_score")
    with open(tmp_path / "in.csv", "w", newline="") as f:
        csv.writer(f).writerows([["sentence", "other"]] + [[s, "x"] for s in reg_rows["sentence"]])
    cli("predict", "-c", config, "--model", "lora/ties", "--task", "sentiment_score", "--input", tmp_path / "in.csv",
        "--output", tmp_path / "out.csv")
    values = [float(r["value"]) for r in csv.DictReader(open(tmp_path / "out.csv"))]
    torch.testing.assert_close(torch.tensor(values), logits["sentiment_score"][:, 0], atol=1e-4, rtol=1e-4)


def test_predict_output_joins_back_to_the_input(setup, tmp_path):
    """Every output row carries its input row number and the input's columns (a clashing one as input_<name>),
    so rows can be joined back after sorting or filtering; a CSV saved with a BOM is read."""
    cli, config = setup
    src = tmp_path / "in.csv"
    src.write_text("ref,sentence,label\nA7,what time is it,gold1\nB2,where is the station,gold2\n", encoding="utf-8-sig")
    res = cli("predict", "-c", config, "--model", "lora/ties", "--task", TINY_TASKS[1], "--input", src, "--output", tmp_path / "out.csv")
    got = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [(g["row"], g["ref"], g["sentence"], g["input_label"]) for g in got] == [
        ("1", "A7", "what time is it", "gold1"), ("2", "B2", "where is the station", "gold2")]
    assert all(g["label"] and g["label_id"] for g in got) and "input_label" in res.output
    cli("predict", "-c", config, "--model", "lora/ties", "--task", TINY_TASKS[1], "--input", src, "--output", tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["row"], r["ref"]) for r in rows] == [(1, "A7"), (2, "B2")] and [r["label"] for r in rows] == [g["label"] for g in got]


@pytest.mark.parametrize("case, message", [("missing_column", "has no 'sentence'"), ("unknown_task", "--task 'nope'"),
                                           ("unreadable", "cannot read"), ("not_json", "line 2 is not a JSON object")])
def test_predict_bad_input_is_one_line_and_writes_nothing(setup, tmp_path, case, message):
    cli, config = setup
    src, task = tmp_path / "in.jsonl", TINY_TASKS[0]
    src.write_text('{"sentence": "fine"}\n' + ('{"text": "no field"}\n' if case == "missing_column" else "[1]\n" if case == "not_json" else ""))
    if case == "unknown_task":
        task = "nope"
    if case == "unreadable":
        src = tmp_path / "absent.jsonl"
    out = tmp_path / "out.jsonl"
    res = cli("predict", "-c", config, "--model", "lora/ties", "--task", task, "--input", src, "--output", out, ok=False)
    assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()
    assert list(tmp_path.glob(".out.jsonl*")) == []


def test_finetuned_adapter_records_no_machine_path(cli, tiny_config):
    """`osrm finetune` writes the backbone's declared name/hub id as base_model_name_or_path, not the local folder."""
    cli("finetune", "-c", tiny_config, "--task", TINY_TASKS[0], "--arm", "lora")
    folder = tiny_config.parent / f"runs/adapters/seed42/lora/{TINY_TASKS[0]}"
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny-encoder"
    from osrm_pipeline.run import open_run
    from stages.io.artifacts import TaskAdapter

    TaskAdapter.open(open_run(tiny_config), "lora", TINY_TASKS[0])  # every file's hash verifies: patched before sealing
