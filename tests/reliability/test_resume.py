"""finetune: kill -9 mid-training, rerun, and end with the adapter an uninterrupted run gives.

Also records how reproducible finetune is: two uninterrupted CPU runs with the same config, seed and
thread count give bitwise-identical adapters (see docs/reliability.md for where that stops holding).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import TINY_TASKS, tiny_pipeline

T0 = TINY_TASKS[0]
REPO = Path(__file__).resolve().parents[2]
ADAPTER = "adapter_model.safetensors"


def _config(tmp: Path, backbone: Path, name: str) -> Path:
    cfg = tiny_pipeline(tmp / name, backbone, data={"max_train": 160, "max_eval": 24, "max_length": 32},
                        finetune={"epochs": 2, "lr": 0.005, "batch_size": 8, "checkpoint_every": 3, "bf16": "off",
                                  "log_every": 50, "threads": 1})
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_backbone):
    """Two uninterrupted in-process runs (threads=1); returns their adapter tensors."""
    from tests.conftest import Cli

    threads = torch.get_num_threads()
    tmp = tmp_path_factory.mktemp("resume")
    out = []
    try:
        for name in ("ref1", "ref2"):
            Cli()("finetune", "-c", _config(tmp, tiny_backbone, name), "--task", T0, "--arm", "lora")
            out.append(load_file(tmp / name / "adapters/seed42/lora" / T0 / ADAPTER))
    finally:
        torch.set_num_threads(threads)
    return out


def test_finetune_is_bitwise_reproducible_on_cpu(uninterrupted):
    a, b = uninterrupted
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _start_and_kill(cfg: Path, ckpt: Path, adapter: Path) -> None:
    env = {**os.environ, "OSRM_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "stages.cli", "finetune", "-c", str(cfg), "--task", T0, "--arm", "lora"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (ckpt / "state.json").is_file():
        assert proc.poll() is None, f"finetune exited early: {proc.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not adapter.exists(), "training finished before the kill: make the run longer"


def test_kill9_then_resume_matches_uninterrupted(tmp_path, tiny_backbone, uninterrupted, cli):
    threads = torch.get_num_threads()
    cfg = _config(tmp_path, tiny_backbone, "killed")
    root = tmp_path / "killed"
    ckpt, adapter = root / "checkpoints/seed42/lora" / T0, root / "adapters/seed42/lora" / T0
    _start_and_kill(cfg, ckpt, adapter)
    try:
        res = cli("finetune", "-c", cfg, "--task", T0, "--arm", "lora")
    finally:
        torch.set_num_threads(threads)
    assert "resuming" in res.output
    got, ref = load_file(adapter / ADAPTER), uninterrupted[0]
    assert got.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-6, msg=k)
    assert not ckpt.exists()  # the checkpoint is dropped once the adapter is in place
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name]  # the killed writer's temp folders are swept


def test_damaged_or_foreign_checkpoint_is_not_resumed(tmp_path, capsys):
    """A checkpoint of another config is ignored; a damaged one is reported and ignored (restart from step 0)."""
    from stages.io import checkpoint

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "state.json").write_text('{"config_hash": "abc", "loop": {}}')
    assert checkpoint.load(folder, "other-config") is None
    (folder / "state.json").write_text('{"config_hash": "abc", "loop": {}}')  # right config, tensors missing
    assert checkpoint.load(folder, "abc") is None
    assert "unreadable" in capsys.readouterr().err
    (folder / "state.json").write_text("{truncated")
    assert checkpoint.load(folder, "abc") is None
