"""The SLURM queue: the only module that calls sbatch/squeue. Submits scripts, records each
submission in `<workdir>/slurm/jobs.jsonl`, polls squeue and reads the jobs' exit markers.

No sacct: clusters without accounting (the local one of scripts/slurm/start_local_slurm.sh) have
none, so a job's status is its exit marker, written by an EXIT trap in the script (docs/slurm.md).
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from osrm_core.errors import OsrmError
from osrm_pipeline.pipeline_config import load_config


def slurm_dir(config: Path) -> Path:
    """`<workdir>/slurm` of the config (workdir relative to the current directory), absolute."""
    return Path(load_config(config).workdir).resolve() / "slurm"


def sbatch(script: str, sdir: Path, name: str) -> str:
    """Save the script under slurm/scripts/ and submit it; returns the job id."""
    exe = shutil.which("sbatch")
    if exe is None:
        raise OsrmError("sbatch not found — install SLURM, or start a local one with scripts/slurm/start_local_slurm.sh (or use --dry-run)")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = sdir / "scripts" / f"{name}-{stamp}.sbatch"
    for sub in ("scripts", "logs", "exit"):
        (sdir / sub).mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    proc = subprocess.run([exe, "--parsable", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise OsrmError(f"sbatch rejected {path.name}: {msg} — fix the resources (partition/time/cpus/mem/gpus) or the cluster")
    return proc.stdout.strip().split(";")[0]


@dataclass
class Submitter:
    """Submits scripts with sbatch, or (dry run) shows each one and returns the ids DRY1, DRY2, ..."""

    sdir: Path
    dry: bool
    show: Callable[[str], None] = print
    count: int = 0

    def __call__(self, name: str, script: str) -> str:
        if not self.dry:
            return sbatch(script, self.sdir, name)
        self.count += 1
        self.show(f"# ---- job {name} (dry-run id DRY{self.count}) ----\n{script}")
        return f"DRY{self.count}"


def record(sdir: Path, entries: list[dict]) -> Path:
    """Append one submission (a list of jobs) to `<workdir>/slurm/jobs.jsonl`."""
    sdir.mkdir(parents=True, exist_ok=True)
    path = sdir / "jobs.jsonl"
    with path.open("a") as fh:
        fh.write(json.dumps({"submitted": _dt.datetime.now().isoformat(timespec="seconds"), "jobs": entries}) + "\n")
    return path


def last_submission(sdir: Path) -> list[dict]:
    """The jobs of the last line of `<workdir>/slurm/jobs.jsonl`."""
    path = sdir / "jobs.jsonl"
    if not path.is_file():
        raise OsrmError(f"no submission recorded in {path} — submit with `osrm submit stage|dag` first")
    return json.loads(path.read_text().strip().splitlines()[-1])["jobs"]


def active(job_ids: list[str]) -> set[str]:
    """The ids among `job_ids` that squeue still lists (pending or running)."""
    exe = shutil.which("squeue")
    if exe is None:
        raise OsrmError("squeue not found — install SLURM, or start a local one with scripts/slurm/start_local_slurm.sh")
    alive = set()
    for jid in job_ids:  # one call per id: squeue fails on the whole list once one id is purged
        proc = subprocess.run([exe, "-h", "-o", "%i", "-j", jid], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            alive.add(jid)
    return alive


def wait_for(job_ids: list[str], timeout: float = 3600.0, poll: float = 1.0) -> None:
    """Poll squeue until none of the jobs is listed; OsrmError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while active(job_ids):
        if time.monotonic() > deadline:
            raise OsrmError(f"jobs {job_ids} still queued/running after {timeout:.0f}s — check `squeue`, or raise --timeout")
        time.sleep(poll)


def exit_codes(marker_dir: Path, job: dict) -> dict[str, int | None]:
    """Exit status per job (or array member) from its marker file; None = never ran (cancelled)."""
    jid = job["job_id"]
    tags = [f"{jid}_{i}" for i in job["indices"]] if job.get("indices") else [jid]
    codes = {}
    for tag in tags:
        path = marker_dir / f"{tag}.exit"
        codes[tag] = int(path.read_text().strip() or 1) if path.is_file() else None
    return codes


def wait_last(sdir: Path, timeout: float, poll: float) -> list[tuple[str, str, int | None]]:
    """Wait for the last submission's jobs to leave the queue; (tag, job name, exit code or None)
    per job or array member."""
    jobs = last_submission(sdir)
    wait_for([j["job_id"] for j in jobs], timeout, poll)
    return [(tag, job["name"], code) for job in jobs for tag, code in exit_codes(sdir / "exit", job).items()]
