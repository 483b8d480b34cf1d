"""`osrm report`: collate every evaluation into metrics.json, a markdown table and a plot."""

from __future__ import annotations

import json
from pathlib import Path

from osrm_core.report import LABEL, build_rows, markdown_table
from stages.io.artifacts import Evaluation, Report
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded
from stages.io.layout import parse_models
from stages.io.options import CONFIG, WORKDIR, run_overrides
from stages.io.run import open_run


def _plot(rows: list[dict], tasks: list[str], arms: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    merges = [r for r in rows if r["kind"] == "merge"]
    methods = sorted({r["method"] for r in merges})
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(methods), 3.4))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        vals = [next((r["normalised"] for r in merges if r["init"] == arm and r["method"] == m), 0) for m in methods]
        ax.bar([j + (i - (len(arms) - 1) / 2) * width for j in range(len(methods))], vals, width, label=LABEL.get(arm, arm))
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(methods)), methods, rotation=15)
    ax.set_ylabel("normalised score (% of individual)")
    ax.set_title(f"Merging {len(tasks)} tasks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@guarded
def main(config: Path = CONFIG, workdir: Path = WORKDIR) -> None:
    """Collect eval/*/metrics.json into report/metrics.json (DVC metrics), report/report.md and report/merge.png."""
    run = open_run(config, run_overrides(workdir))
    arms = list(run.cfg.arms)
    wanted = ["base"] + [f"{a}/individual" for a in arms] + [f"{a}/merges" for a in arms]
    arts = {str(ref): Evaluation.open(run, ref) for ref in parse_models(wanted, arms, list(run.cfg.merge.methods))}
    models = list(arts)
    evals, upstream = {m: a.metrics for m, a in arts.items()}, {m: a.content_hash for m, a in arts.items()}
    rows = build_rows(evals, run.tasks)
    out = run.layout.report()
    header = (f"# OSRM report\n\nBackbone `{run.spec.name}`, suite `{run.suite.suite}` ({len(run.tasks)} tasks), split "
              f"`{run.cfg.evaluate.split}`, LoRA r={run.cfg.lora.rank} alpha={run.cfg.lora.alpha:g} blocks={run.cfg.lora.blocks}, "
              f"OSRM estimator `{run.cfg.osrm.estimator}` k={run.cfg.osrm.k}, seed {run.cfg.seed}.\n\n")
    with atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps({"rows": rows}, indent=1, sort_keys=True) + "\n")
        (tmp / "report.md").write_text(header + markdown_table(rows, run.tasks) + "\n")
        _plot(rows, run.tasks, arms, tmp / "merge.png")
        Report.seal(tmp, {"models": models}, upstream=upstream)
    print(f"report: {out / 'report.md'}")
    print(markdown_table(rows, run.tasks))
