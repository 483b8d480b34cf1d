"""DVC experiments compare runs: `dvc exp run` commits the metrics and plots of dvc.yaml (cache: false, under
`workdir`, runs/<name>/), so `dvc exp show`, `dvc metrics diff` and `dvc plots diff` read every experiment's.

The project's .gitignore and the report / diagnose_summary stages' outs, metrics and plots exactly as dvc.yaml
declares them, in a scratch git + DVC repository; each stage's command is a stand-in that writes those files
(the numbers from a param), so two experiments take seconds instead of two pipeline runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("report", "diagnose_summary")
WRITER = '''import json, sys, yaml
from pathlib import Path
n = yaml.safe_load(open("pipeline.yaml"))["data"]["max_test"]
for path in map(Path, sys.argv[1:]):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.suffix:  # a folder of plot rows (report/curves)
        path.mkdir(exist_ok=True)
        (path / "task_arithmetic.json").write_text(json.dumps([{"arm": "osrm", "lambda": 1.0, "average": n}]))
    elif path.suffix == ".png":
        path.write_bytes(b"png " + str(n).encode())
    else:
        path.write_text(json.dumps({"average": n}) if path.suffix == ".json" else f"{n}\\n")
'''


def _paths(stage: dict) -> list[str]:
    """Every file or folder a dvc.yaml stage writes (outs, metrics, plots), as declared."""
    return [next(iter(e)) if isinstance(e, dict) else e for key in ("outs", "metrics", "plots") for e in stage.get(key, [])]


def _project(root: Path) -> None:
    real = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    stages = {}
    for name in STAGES:
        stage = {k: real[name][k] for k in ("outs", "metrics", "plots") if k in real[name]}
        paths = " ".join(_paths(stage))
        stages[name] = {"cmd": f"{sys.executable} write.py {paths}", "params": [{"pipeline.yaml": ["data.max_test"]}], **stage}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"vars": ["pipeline.yaml"], "stages": stages}, sort_keys=False))
    workdir = yaml.safe_load((REPO / "pipeline.yaml").read_text())["workdir"]
    (root / "pipeline.yaml").write_text(yaml.safe_dump({"workdir": workdir, "data": {"max_test": 300}}))
    (root / "write.py").write_text(WRITER)
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    (root / "configs/plots").mkdir(parents=True)
    shutil.copy(REPO / "configs/plots/lambda_by_arm.json", root / "configs/plots/lambda_by_arm.json")


def _run(root: Path, *args: str) -> str:
    res = subprocess.run(list(args), cwd=root, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(args)}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res.stdout


def _metrics_by_name(rows) -> dict[str, dict]:
    """{experiment name: {metrics file: its data}} from `dvc exp show --json` (any nesting of baselines/experiments)."""
    out = {}
    if isinstance(rows, dict):
        data = rows.get("data") or {}
        if rows.get("name") and "metrics" in data:
            out[rows["name"]] = {f: (m or {}).get("data") for f, m in (data["metrics"] or {}).items()}
        rows = list(rows.values())
    if isinstance(rows, list):
        for r in rows:
            out |= _metrics_by_name(r)
    return out


def test_dvc_exp_show_reads_every_experiments_metrics(tmp_path):
    dvc = [sys.executable, "-m", "dvc"]
    _project(tmp_path)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@t"], ["git", "config", "user.name", "t"],
                [*dvc, "init", "-q"], [*dvc, "config", "core.analytics", "false"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "project"]):
        _run(tmp_path, *cmd)
    for name, n in (("small", 100), ("large", 400)):
        _run(tmp_path, *dvc, "exp", "run", "-n", name, "-S", f"pipeline.yaml:data.max_test={n}")
    got = _metrics_by_name(json.loads(_run(tmp_path, *dvc, "exp", "show", "--json")))
    workdir = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())["workdir"]
    report = f"{workdir}/report/metrics.json"
    assert got.get("small", {}).get(report) == {"average": 100} and got.get("large", {}).get(report) == {"average": 400}, got
    assert got["large"][f"{workdir}/diagnostics_summary/summary.json"] == {"average": 400}
    diff = json.loads(_run(tmp_path, *dvc, "metrics", "diff", "small", "large", "--json"))
    assert diff[report]["average"] == {"old": 100, "new": 400, "diff": 300}
    plots = json.loads(_run(tmp_path, *dvc, "plots", "diff", "small", "large", "--json"))["data"]
    curve = plots[f"{workdir}/report/curves/task_arithmetic.json"][0]["content"]["data"]["values"]
    assert sorted((row["rev"], row["average"]) for row in curve) == [("large", 400), ("small", 100)]
    assert {r for e in plots[f"{workdir}/report/merge.png"] for r in e["revisions"]} == {"small", "large"}
