"""`--task all` (what dvc.yaml runs: one process per seed / per (seed, arm)) writes every task's artifact,
bit-identical to one task per call; manifests record the writing process's start-up stamps."""

import json
import sys

import pytest

from stages.io import guard
from stages.io.artifacts import Features, TaskAdapter
from stages.io.manifest import read_manifest
from tests.conftest import TINY_TASKS


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_extract_all_equals_per_task(cli, tiny_config):
    one, every = tiny_config.parent / "one", tiny_config.parent / "all"
    for t in TINY_TASKS:
        cli("extract-features", "-c", tiny_config, "--workdir", one, "--task", t)
    res = cli("extract-features", "-c", tiny_config, "--workdir", every, "--task", "all")
    assert res.output.count("features: ") == len(TINY_TASKS)
    for t in TINY_TASKS:  # content_hash: sha256 over every file but the manifest (the zarr chunks included)
        ref, got = _manifest(one / "features/seed42" / t), _manifest(every / "features/seed42" / t)
        assert got["files"] == ref["files"] and got["content_hash"] == ref["content_hash"]
    written = [_manifest(every / "features/seed42" / t)["timing"]["written"] for t in TINY_TASKS]
    assert written == sorted(written)  # each task published as soon as it is done, in the config's order


def test_finetune_all_equals_per_task(cli, tiny_config):
    one, every = tiny_config.parent / "one", tiny_config.parent / "all"
    for t in TINY_TASKS:
        cli("finetune", "-c", tiny_config, "--workdir", one, "--arm", "lora", "--task", t)
    res = cli("finetune", "-c", tiny_config, "--workdir", every, "--arm", "lora", "--task", "all")
    assert res.output.count("adapter: ") == len(TINY_TASKS)
    for t in TINY_TASKS:  # every file but training.json (its wall-clock seconds differ) is byte-identical
        ref, got = _manifest(one / "adapters/seed42/lora" / t)["files"], _manifest(every / "adapters/seed42/lora" / t)["files"]
        assert set(got) == set(ref) and {k: v for k, v in got.items() if k != "training.json"} == \
            {k: v for k, v in ref.items() if k != "training.json"}
        history = [json.loads((w / "adapters/seed42/lora" / t / "training.json").read_text())["history"] for w in (one, every)]
        assert history[0] == history[1]


def test_a_bad_task_in_the_list_stops_before_any_work(cli, tiny_config):
    res = cli("extract-features", "-c", tiny_config, "--task", "all", "--task", "nope", ok=False)
    assert res.exit_code == 2 and "'nope'" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tiny_config.parent / "runs").exists()


def test_timing_is_written_and_read_back(cli, tiny_config):
    cli("extract-features", "-c", tiny_config, "--task", TINY_TASKS[0])
    folder = tiny_config.parent / "runs/features/seed42" / TINY_TASKS[0]
    timing = read_manifest(folder, Features.Manifest, "osrm extract-features").timing
    assert timing.process_start is not None and timing.process_start <= timing.main_start <= timing.written
    raw = _manifest(folder)
    del raw["timing"]  # a manifest written before the field existed still reads (the manifest is not hashed)
    (folder / "manifest.json").write_text(json.dumps(raw))
    assert read_manifest(folder, Features.Manifest, "osrm extract-features").timing is None
    assert TaskAdapter.Manifest.model_fields["timing"].default is None


def test_one_start_up_per_process(monkeypatch):
    """main_start follows the commands entered until the first manifest; later commands of the same process
    (`osrm run`) share it. Preloaded modules are imported before the stamp; a missing one is skipped."""
    monkeypatch.setattr(guard, "_STAMPS", {"process_start": None, "main_start": None, "frozen": False})
    monkeypatch.delitem(sys.modules, "tabnanny", raising=False)
    seen = []

    @guard.guarded(preload=("tabnanny", "no_such_module_for_osrm"))
    def command():
        assert "tabnanny" in sys.modules
        seen.append((guard._STAMPS["main_start"], guard.process_timing()))

    @guard.guarded
    def runner():
        outer = guard._STAMPS["main_start"]
        command()
        command()
        assert seen[0][0] >= outer

    runner()
    (first_stamp, first), (second_stamp, second) = seen
    assert first == second and first_stamp == second_stamp == first["main_start"]
    psutil = pytest.importorskip("psutil")
    assert first["process_start"] == psutil.Process().create_time() <= first["main_start"]


def test_deepspeed_finetunes_every_task_in_one_process_group(tmp_path):
    """Under ZeRO-3 the process group is joined once and reused by the later tasks (each run is its own
    process: DeepSpeed cannot join a second group in a process whose first one was destroyed)."""
    import torch
    import yaml
    from safetensors.torch import load_file

    from tests.distributed.zero_lib import dropout_free_backbone, torchrun, write_config, zero_config

    backbone, tasks = dropout_free_backbone(tmp_path / "bb"), TINY_TASKS[:2]
    cfg = write_config(tmp_path / "zero", backbone, 16, str(zero_config(tmp_path, 3)))
    cfg.write_text(yaml.safe_dump({**yaml.safe_load(cfg.read_text()), "tasks": tasks}))
    one, every = tmp_path / "one", tmp_path / "all"
    for t in tasks:
        torchrun(1, "finetune", "-c", cfg, "--workdir", one, "--arm", "lora", "--task", t)
    res = torchrun(1, "finetune", "-c", cfg, "--workdir", every, "--arm", "lora", "--task", "all")
    assert res.stdout.count("adapter: ") == len(tasks)
    for t in tasks:
        ref, got = (load_file(w / "adapters/seed42/lora" / t / "adapter_model.safetensors") for w in (one, every))
        assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
