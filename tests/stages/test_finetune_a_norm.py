"""`osrm finetune` records the realised ||A_0||_F (lora.a_norm) per module in training.json and its mean in the
manifest; `osrm report` reads it for the individual table (stages/report.a0_norms)."""

import json

import pytest
import yaml

from tests.conftest import TINY_TASKS, tiny_pipeline


def test_finetune_records_a0_norm(cli, tmp_path, tiny_backbone):
    from osrm_pipeline.run import open_run
    from stages.io.artifacts import TaskAdapter
    from stages.report import a0_norms

    arms = {"lora": {"init": "gaussian"}, "ortho": {"init": "orthonormal", "lora": {"a_norm": 2.5}}}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tiny_pipeline(tmp_path / "runs", tiny_backbone, arms=arms, data={"max_train": 16})))
    task = TINY_TASKS[0]
    cli("finetune", "-c", path, "--arm", "ortho", "--task", task)
    folder = tmp_path / "runs/adapters/seed42/ortho" / task
    train = json.loads((folder / "training.json").read_text())
    assert len(train["a0_norm"]) >= 2 and all(v == pytest.approx(2.5, rel=1e-6) for v in train["a0_norm"].values())
    assert train["a0_norm_mean"] == pytest.approx(2.5, rel=1e-6)
    assert TaskAdapter.read(folder, "finetune").manifest.a0_norm == pytest.approx(2.5, rel=1e-6)
    norms = a0_norms(open_run(path, {}))
    assert norms["ortho"] == pytest.approx(2.5, rel=1e-6) and norms["lora"] is None  # lora was not trained here
