"""DeepSpeed ZeRO-3 as one in-process rank (no launcher: the stage sets RANK=0/WORLD_SIZE=1 and a free port)."""

import torch

from safetensors.torch import load_file

from osrm_core.distributed import free_port
from tests.distributed.zero_lib import TASK, adapter, dropout_free_backbone, write_config, zero_config


def test_zero3_single_process_matches_plain(cli, tmp_path, monkeypatch):
    for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(k, v)  # what the stage would set itself; monkeypatch restores the env afterwards
    backbone = dropout_free_backbone(tmp_path / "bb")
    plain = write_config(tmp_path / "plain", backbone, 16)
    zero = write_config(tmp_path / "zero", backbone, 16, str(zero_config(tmp_path, 3)))
    cli("finetune", "-c", plain, "--task", TASK, "--arm", "lora")
    res = cli("finetune", "-c", zero, "--task", TASK, "--arm", "lora")
    assert "adapter: " in res.output
    ref, got = adapter(plain), adapter(zero)
    assert set(ref) == set(got) and all(t.numel() > 0 for t in got.values())
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=2e-4, rtol=1e-3)


def test_two_deepspeed_runs_in_one_process(cli, tmp_path, monkeypatch):
    """`osrm run` fine-tunes task after task in one process: after the first DeepSpeed run destroyed its
    process group, the second must start a fresh one (DeepSpeed keeps its own handle to the old group)."""
    for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(k, v)
    backbone = dropout_free_backbone(tmp_path / "bb")
    zero = write_config(tmp_path / "zero", backbone, 16, str(zero_config(tmp_path, 2)))
    cli("finetune", "-c", zero, "--task", TASK, "--arm", "lora")
    first = adapter(zero)
    res = cli("finetune", "-c", zero, "--task", TASK, "--arm", "lora", "--workdir", tmp_path / "again", "--no-resume")
    assert "adapter: " in res.output
    again = load_file(tmp_path / "again" / "adapters" / "seed42" / "lora" / TASK / "adapter_model.safetensors")
    assert set(again) == set(first) and all(torch.equal(again[k], first[k]) for k in first)
