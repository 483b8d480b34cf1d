"""Jobs on a real SLURM (slurm-wlm 22.05 started by scripts/slurm/start_local_slurm.sh).

Accounting is off (no sacct), so completion is detected by polling `squeue -j` until the job is
gone, then reading the job's log and its exit marker (`sbatch --wait` polls at 2/8/32 s: too slow).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from osrm_core import slurm
from osrm_core.config import load_config
from stages import submit

pytestmark = pytest.mark.slurm
OSRM = str(Path(sys.executable).parent / "osrm")
FAST = ["--cpus-per-task", "1", "--time", "00:05:00"]


def finished(sdir: Path, job: dict, timeout: float = 45.0) -> dict:
    """Poll squeue until the job leaves the queue; return its exit codes from the markers."""
    submit.wait_for([job["job_id"]], timeout=timeout, poll=0.3)
    return submit.exit_codes(sdir / "exit", job)


def tiny_config_or_none(request) -> Path | None:
    try:
        return Path(request.getfixturevalue("tiny_config"))
    except pytest.FixtureLookupError:
        return None


def test_real_job_runs_osrm_command(local_slurm, request, tmp_path):
    """`osrm submit stage` -> sbatch -> the job runs `osrm extract-features` -> features exist.
    (Before tests/conftest.py provides `tiny_config`, the job runs `osrm --help`.)"""
    tiny = tiny_config_or_none(request)
    if tiny is None:
        sdir = tmp_path / "w" / "slurm"
        place = submit.place_for(sdir, tmp_path, None)
        script = slurm.single_script("osrm-help", f"{OSRM} --help", slurm.Resources(cpus_per_task=1), place, "help")
        job = {"job_id": submit.sbatch(script, sdir, "osrm-help")}
        assert finished(sdir, job) == {job["job_id"]: 0}
        assert "extract-features" in (sdir / "logs" / f"osrm-help-{job['job_id']}.out").read_text()
        return
    cwd = tiny.parent
    cfg = load_config(tiny)
    task = (cfg.tasks or __import__("osrm_core.tasks", fromlist=["list_tasks"]).list_tasks(cfg.suite))[0]
    proc = subprocess.run([OSRM, "submit", "stage", "--config", str(tiny), "--stage", "extract-features",
                           "--task", task, *FAST], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    workdir = (cwd / cfg.workdir).resolve()
    job = {"job_id": proc.stdout.strip().splitlines()[-1]}
    codes = finished(workdir / "slurm", job)
    log = (workdir / "slurm" / "logs" / f"osrm-extract-features-{job['job_id']}.out").read_text()
    assert codes == {job["job_id"]: 0}, log
    assert any((workdir / "features" / task).iterdir()), log


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
