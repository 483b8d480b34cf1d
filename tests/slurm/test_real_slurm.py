"""Jobs on a real SLURM (slurm-wlm 22.05 started by scripts/slurm/start_local_slurm.sh).

Accounting is off (no sacct), so completion is detected by polling `squeue -j` until the job is
gone, then reading the job's log and its exit marker (`sbatch --wait` polls at 2/8/32 s: too slow).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from osrm_pipeline.layout import Layout
from osrm_pipeline.pipeline_config import load_config
from osrm_slurm import jobs as slurm_jobs
from stages import submit

pytestmark = pytest.mark.slurm
OSRM = str(Path(sys.executable).parent / "osrm")
FAST = ["--cpus-per-task", "1", "--time", "00:05:00"]


def finished(sdir: Path, job: dict, timeout: float = 45.0) -> dict:
    """Poll squeue until the job leaves the queue; return its exit codes from the markers."""
    slurm_jobs.wait_for([job["job_id"]], timeout=timeout, poll=0.3)
    return slurm_jobs.exit_codes(sdir / "exit", job)


def test_real_job_runs_osrm_command(local_slurm, tiny_config):
    """`osrm submit stage` -> sbatch -> the job runs `osrm extract-features` -> the features exist."""
    cfg = load_config(tiny_config)
    task = cfg.tasks[0]
    proc = subprocess.run([OSRM, "submit", "stage", "--config", str(tiny_config), "--stage", "extract-features",
                           "--task", task, *FAST], cwd=tiny_config.parent, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    workdir = (tiny_config.parent / cfg.workdir).resolve()
    job = {"job_id": proc.stdout.strip().splitlines()[-1]}
    codes = finished(workdir / "slurm", job)
    log = (workdir / "slurm" / "logs" / f"osrm-extract-features-{job['job_id']}.out").read_text()
    assert codes == {job["job_id"]: 0}, log
    assert (Layout(workdir, 42).features(task) / "features.zarr").is_dir(), log
    record = json.loads((workdir / "slurm" / "jobs.jsonl").read_text())
    assert record["jobs"][0]["job_id"] == job["job_id"] and record["jobs"][0]["tasks"] == [task]


def test_real_dag_runs_and_commits(local_slurm, toy_repo, monkeypatch):
    """The toy DVC DAG as an array job + a dependent job; DVC sees the result as up to date."""
    from dvc.repo import Repo

    monkeypatch.chdir(toy_repo)
    cli = CliRunner()
    res = cli.invoke(submit.app, ["dag", "--config", "pipeline.yaml", *FAST])
    assert res.exit_code == 0, res.output
    res = cli.invoke(submit.app, ["wait", "--config", "pipeline.yaml", "--poll", "0.3", "--timeout", "45"])
    assert res.exit_code == 0, res.output
    assert (toy_repo / "out" / "merged.txt").read_text() == "feat-a\nfeat-b\n"
    with Repo(str(toy_repo)) as repo:
        assert repo.status() == {}
    res = cli.invoke(submit.app, ["dag", "--config", "pipeline.yaml", "--dry-run"])
    assert "nothing to submit" in res.output


def test_real_dag_failure_cancels_dependents(local_slurm, dvc_repo_factory, monkeypatch):
    """A failing array member fails its job; the dependent job is cancelled and never runs."""
    toy = dvc_repo_factory("bad", """
    stages:
      extract:
        foreach: [a, b]
        do:
          cmd: test ${item} = a && echo ok > ${item}.txt || exit 3
          outs:
            - ${item}.txt
      merge:
        cmd: cat a.txt b.txt > m.txt
        deps: [a.txt, b.txt]
        outs:
          - m.txt
    """)
    monkeypatch.chdir(toy)
    cli = CliRunner()
    assert cli.invoke(submit.app, ["dag", "--config", "pipeline.yaml", *FAST]).exit_code == 0
    res = cli.invoke(submit.app, ["wait", "--config", "pipeline.yaml", "--poll", "0.3", "--timeout", "45"])
    assert res.exit_code == 2 and "2 job(s) failed or never ran" in res.output, res.output
    assert "exit 3" in res.output and "never ran" in res.output
    assert not (toy / "m.txt").exists()
