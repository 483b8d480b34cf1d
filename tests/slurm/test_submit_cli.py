"""`osrm submit` commands without a cluster: --dry-run output, DVC DAG reading, error messages."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from stages import submit

runner = CliRunner()


def invoke(*args, cwd=None, monkeypatch=None):
    if cwd is not None:
        monkeypatch.chdir(cwd)
    return runner.invoke(submit.app, list(args))


def test_stage_dry_run_single(tmp_path, monkeypatch):
    (tmp_path / "p.yaml").write_text(f"workdir: {tmp_path / 'w'}\n")
    res = invoke("stage", "--config", "p.yaml", "--stage", "extract-features", "--task", "sst2",
                 "--cpus-per-task", "3", "--time", "00:05:00", "--dry-run", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    assert "#SBATCH --cpus-per-task=3" in res.output and "#SBATCH --time=00:05:00" in res.output
    assert "osrm extract-features --config p.yaml --task sst2" in res.output
    assert f"cd {tmp_path}" in res.output
    assert not (tmp_path / "w" / "slurm" / "jobs.jsonl").exists(), "a dry run records nothing"


def test_stage_dry_run_array_and_passthrough(tmp_path, monkeypatch):
    (tmp_path / "p.yaml").write_text("workdir: w\ntasks: [a, b, c]\n")
    res = invoke("stage", "--config", "p.yaml", "--stage", "finetune", "--task", "all", "--arm", "osrm",
                 "--dry-run", "--", "--workdir", "elsewhere", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    assert "#SBATCH --array=0-2" in res.output
    for t in "abc":
        assert f"osrm finetune --config p.yaml --task {t} --arm osrm --workdir elsewhere" in res.output


def test_stage_dry_run_multinode(tmp_path, monkeypatch):
    (tmp_path / "p.yaml").write_text("workdir: w\n")
    res = invoke("stage", "--config", "p.yaml", "--stage", "finetune", "--task", "a", "--arm", "osrm",
                 "--nodes", "4", "--gpus-per-node", "8", "--dry-run", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    assert "#SBATCH --nodes=4" in res.output and "--rdzv_backend c10d" in res.output


def test_stage_errors_are_one_line(tmp_path, monkeypatch):
    (tmp_path / "p.yaml").write_text("workdir: w\n")
    res = invoke("stage", "--config", "p.yaml", "--stage", "merge", "--arm", "osrm", "--dry-run",
                 cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 2 and "needs --method" in res.output
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    res = invoke("stage", "--config", "p.yaml", "--stage", "report")
    assert res.exit_code == 2 and "sbatch not found" in res.output and "start_local_slurm.sh" in res.output


def test_dag_dry_run_on_toy_repo(toy_repo, monkeypatch):
    res = invoke("dag", "--config", "pipeline.yaml", "--dry-run", cwd=toy_repo, monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    summary = re.findall(r"^(DRY\d+)\t(\S+)\t(\d+) stage\(s\)\t(\S+)$", res.output, re.M)
    assert summary == [("DRY1", "osrm-extract", "2", "-"), ("DRY2", "osrm-merge", "1", "afterok:DRY1")]
    assert "#SBATCH --array=0-1" in res.output and "#SBATCH --dependency=afterok:DRY1" in res.output
    assert "dvc --wait-for-lock commit --force --quiet extract@b" in res.output
    res = invoke("dag", "--config", "pipeline.yaml", "--dry-run", "--targets", "extract@a", "--runner", "repro")
    assert res.exit_code == 0 and "dvc --wait-for-lock repro --single-item extract@a" in res.output
    assert "osrm-merge" not in res.output and "#SBATCH --array" not in res.output


def test_dag_outside_dvc_repo(tmp_path, monkeypatch):
    (tmp_path / "p.yaml").write_text("workdir: w\n")
    res = invoke("dag", "--config", "p.yaml", "--repo", str(tmp_path), "--dry-run", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 2 and "no DVC repository" in res.output
