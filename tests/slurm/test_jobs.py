"""The queue side without a cluster: job records, exit markers, dry-run ids, a fake squeue, and the
templates folder following OSRM_CONFIGS_DIR."""

from __future__ import annotations

import shutil

import pytest

from osrm_slurm import jobs as slurm_jobs, render as slurm, submit as slurm_submit
from osrm_core.errors import OsrmError


def test_record_then_last_submission(tmp_path):
    sdir = tmp_path / "slurm"
    with pytest.raises(OsrmError, match="no submission recorded"):
        slurm_jobs.last_submission(sdir)
    slurm_jobs.record(sdir, [{"job_id": "1", "name": "a"}])
    path = slurm_jobs.record(sdir, [{"job_id": "2", "name": "b"}, {"job_id": "3", "name": "c"}])
    assert path == sdir / "jobs.jsonl" and len(path.read_text().splitlines()) == 2
    assert [j["job_id"] for j in slurm_jobs.last_submission(sdir)] == ["2", "3"]


def test_exit_codes_from_markers(tmp_path):
    (tmp_path / "7.exit").write_text("0\n")
    (tmp_path / "8_0.exit").write_text("3\n")
    (tmp_path / "8_2.exit").write_text("")  # killed while writing: counts as a failure
    assert slurm_jobs.exit_codes(tmp_path, {"job_id": "7"}) == {"7": 0}
    assert slurm_jobs.exit_codes(tmp_path, {"job_id": "8", "indices": [0, 1, 2]}) == {"8_0": 3, "8_1": None, "8_2": 1}


def test_submitter_dry_run_numbers_and_shows(tmp_path):
    shown = []
    submit = slurm_jobs.Submitter(tmp_path, dry=True, show=shown.append)
    assert [submit("a", "#!/bin/bash\n"), submit("b", "echo\n")] == ["DRY1", "DRY2"]
    assert shown[1].startswith("# ---- job b (dry-run id DRY2) ----\necho")
    assert not any(tmp_path.iterdir()), "a dry run writes nothing"


def test_wait_last_with_fake_squeue(tmp_path, monkeypatch):
    """squeue lists job 5 for its first two polls, then nothing; 6 is gone from the start."""
    bindir, count = tmp_path / "bin", tmp_path / "polls"
    bindir.mkdir()
    (bindir / "squeue").write_text(
        f'#!/bin/bash\n[ "$5" = 5 ] || exit 1\necho x >> {count}\n[ $(wc -l < {count}) -le 2 ] && echo 5\nexit 0\n')
    (bindir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    sdir = tmp_path / "slurm"
    (sdir / "exit").mkdir(parents=True)
    (sdir / "exit" / "5.exit").write_text("0")
    slurm_jobs.record(sdir, [{"job_id": "5", "name": "one"}, {"job_id": "6", "name": "arr", "indices": [0]}])
    rows = slurm_jobs.wait_last(sdir, timeout=10, poll=0.01)
    assert rows == [("5", "one", 0), ("6_0", "arr", None)]
    assert len(count.read_text().splitlines()) == 3
    with pytest.raises(OsrmError, match="still queued/running"):
        count.unlink()
        slurm_jobs.wait_for(["5"], timeout=0, poll=0.01)


def test_stage_request_checks_and_entry():
    with pytest.raises(OsrmError, match="needs --method"):
        slurm_submit.StageRequest("merge", "p.yaml", arm="osrm")
    req = slurm_submit.StageRequest("extract-features", "p.yaml", ("a", "b"))
    assert req.entry("9") == {"job_id": "9", "name": "osrm-extract-features", "stage": "extract-features",
                              "tasks": ["a", "b"], "array": True}


def test_templates_follow_configs_dir(tmp_path, monkeypatch):
    shutil.copytree(slurm.TEMPLATE_DIR, tmp_path / "slurm")
    (tmp_path / "slurm" / "stage.sbatch").write_text("#!/bin/bash\n{{sbatch}}\n# mine\n{{command}}\n")
    monkeypatch.setenv("OSRM_CONFIGS_DIR", str(tmp_path))
    place = slurm.Place(cwd="/r", log_dir="/l", marker_dir="/m")
    script = slurm.single_script("j", "echo hi", slurm.Resources(), place, "d")
    assert "# mine\necho hi" in script
