"""Pure rendering tests: #SBATCH lines, array specs, the multi-node launch, bash syntax."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from osrm_slurm import render as slurm
from osrm_core.errors import OsrmError

PLACE = slurm.Place(cwd="/repo", log_dir="/w/slurm/logs", marker_dir="/w/slurm/exit", setup="export X=1")


def header(script: str) -> list[str]:
    """#SBATCH lines; asserts they all precede the first command (sbatch stops reading there)."""
    lines = script.splitlines()
    first_cmd = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert not [line for line in lines[first_cmd:] if line.startswith("#SBATCH")]
    return [line for line in lines if line.startswith("#SBATCH")]


def bash_ok(script: str) -> None:
    if shutil.which("bash"):
        proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_sbatch_lines_only_set_options():
    res = slurm.Resources(partition="gpu", time="01:00:00", cpus_per_task=4, mem="8G", extra=("--qos=high",))
    lines = slurm.sbatch_lines("job", res, "/l/%x-%j.out", dependency="afterok:7")
    assert lines == ["#SBATCH --job-name=job", "#SBATCH --output=/l/%x-%j.out", "#SBATCH --partition=gpu",
                     "#SBATCH --time=01:00:00", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                     "#SBATCH --dependency=afterok:7", "#SBATCH --kill-on-invalid-dep=yes", "#SBATCH --qos=high"]


def test_single_stage_script():
    argv = slurm.stage_argv("extract-features", "pipeline.yaml", task="sst2")
    res = slurm.Resources(time="00:10:00", cpus_per_task=2)
    script = slurm.single_script("osrm-extract-features", "osrm " + " ".join(argv), res, PLACE, "desc")
    assert "#SBATCH --cpus-per-task=2" in header(script)
    assert "#SBATCH --output=/w/slurm/logs/%x-%j.out" in header(script)
    assert "osrm extract-features --config pipeline.yaml --task sst2" in script
    assert "MARKER_DIR=/w/slurm/exit" in script and "cd /repo" in script
    bash_ok(script)


def test_array_script_over_tasks():
    cmds = {i: f"osrm finetune --config p.yaml --task {t} --arm osrm" for i, t in enumerate(["a", "b", "c"])}
    script = slurm.array_script("osrm-finetune", cmds, slurm.Resources(), PLACE, "d", max_parallel=2)
    assert "#SBATCH --array=0-2%2" in header(script)
    assert "#SBATCH --output=/w/slurm/logs/%x-%A_%a.out" in header(script)
    for i, t in enumerate("abc"):
        assert f"  {i})\n    osrm finetune --config p.yaml --task {t} --arm osrm\n    ;;" in script
    bash_ok(script)


@pytest.mark.parametrize("idx,spec", [([0, 1, 2], "0-2"), ([3], "3"), ([0, 2, 5], "0,2,5"), ([4, 5], "4-5")])
def test_array_spec(idx, spec):
    assert slurm.array_spec(idx) == spec


def test_multinode_torchrun():
    argv = slurm.stage_argv("finetune", "p.yaml", arm="osrm", check=False)
    res = slurm.Resources(nodes=2, gpus_per_node=4)
    script = slurm.multinode_script("osrm-finetune", argv, ["sst2"], res, PLACE, "d")
    h = header(script)
    assert {"#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=1"} <= set(h)
    assert "GPUS=4" in script and "TASK=sst2" in script
    assert ('srun --kill-on-bad-exit=1 torchrun --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS" '
            '--rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$head:29500" '
            '-m stages.cli finetune --config p.yaml --arm osrm --task "$TASK"') in script
    bash_ok(script)


def test_multinode_srun_launcher_array():
    argv = slurm.stage_argv("finetune", "p.yaml", arm="lora", check=False)
    res = slurm.Resources(nodes=2, gpus_per_node=8)
    script = slurm.multinode_script("ft", argv, ["a", "b"], res, PLACE, "d", launcher="srun", port=29600)
    assert {"#SBATCH --ntasks-per-node=8", "#SBATCH --array=0-1"} <= set(header(script))
    assert "RANK=$SLURM_PROCID" in script and "MASTER_PORT=29600" in script
    assert "  0)\n    TASK=a\n    ;;" in script and "  1)\n    TASK=b\n    ;;" in script
    bash_ok(script)
    with pytest.raises(OsrmError, match="launcher"):
        slurm.multinode_script("ft", argv, ["a"], res, PLACE, "d", launcher="mpirun")


def test_stage_argv_checks_required_options():
    assert slurm.stage_argv("merge", "p.yaml", arm="osrm", method="ties") == [
        "merge", "--config", "p.yaml", "--arm", "osrm", "--method", "ties"]
    assert slurm.stage_argv("evaluate", "p.yaml", model="osrm/ties")[-2:] == ["--model", "osrm/ties"]
    with pytest.raises(OsrmError, match="--method"):
        slurm.stage_argv("merge", "p.yaml", arm="osrm")
    assert slurm.stage_argv("convert", "p.yaml", task="a", extra=["project", "--out", "o"]) == [
        "convert", "project", "--config", "p.yaml", "--task", "a", "--out", "o"]
    with pytest.raises(OsrmError, match="subcommand"):
        slurm.stage_argv("convert", "p.yaml", task="a", extra=["--out", "o"])
    with pytest.raises(OsrmError, match="not a pipeline stage"):
        slurm.stage_argv("train", "p.yaml")


def test_resources_table():
    table = {"default": {"time": "01:00:00", "cpus_per_task": 1}, "stages": {"finetune": {"cpus_per_task": 8}}}
    res = slurm.resources_for(table, "finetune").merged(time="05:00:00", mem=None)
    assert (res.time, res.cpus_per_task, res.mem) == ("05:00:00", 8, None)
    with pytest.raises(OsrmError, match="unknown keys"):
        slurm.resources_for({"default": {"gpus": 1}}, "x")


def test_render_reports_missing_placeholder(tmp_path):
    (tmp_path / "t.sbatch").write_text("{{sbatch}}\n{{nope}}\n")
    with pytest.raises(OsrmError, match="nope"):
        slurm.render("t.sbatch", {"sbatch": ""}, template_dir=tmp_path)
    with pytest.raises(OsrmError, match="missing"):
        slurm.render("absent.sbatch", {}, template_dir=tmp_path)


def test_stage_job_command_runners():
    node = slurm.StageNode("finetune@osrm-a", ("python train.py a", "touch done"), "sub", ())
    cmd = slurm.stage_job_command(node, "/r")
    assert cmd.split("\n    ") == ["cd /r/sub", "bash -c 'python train.py a'", "bash -c 'touch done'", "cd /r",
                                   "dvc --wait-for-lock commit --force --quiet finetune@osrm-a"]
    assert slurm.stage_job_command(node, "/r", "repro").endswith("dvc --wait-for-lock repro --single-item finetune@osrm-a")
    with pytest.raises(OsrmError, match="runner"):
        slurm.stage_job_command(node, "/r", "make")
