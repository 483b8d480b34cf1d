"""`osrm run`: the whole pipeline for one config in ONE process, stage after stage, in DVC's order.

For batch runs that do not need DVC's caching (the multi-seed study): every stage command runs through
the same Typer commands as `osrm <stage>`, but torch/transformers are imported once and the backbone
files stay in the page cache, instead of paying process start-up ~100 times. With --skip-done a
stage whose artifact already has a manifest is not rerun (delete the artifact to redo it); for
cached, dependency-tracked reruns use `dvc repro` on pipeline.yaml instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from osrm_core.errors import OsrmError
from osrm_pipeline.layout import Layout, ModelRef
from osrm_pipeline.pipeline_config import load_config
from stages.io.artifacts import Subspace
from stages.io.guard import guarded
from stages.io.options import CONFIG

STEPS = ("extract-features", "build-subspace", "finetune", "merge", "evaluate", "select", "diagnose", "report")


def plan(config: Path, cfg) -> list[tuple[str, list[str], Path | None]]:
    """(command, arguments, the artifact folder it writes or None) for every step, in dependency order."""
    c, tasks, out = str(config), cfg.tasks, []
    for seed in cfg.seeds:
        lay, s = Layout(Path(cfg.workdir), seed), ["--seed", str(seed)]
        out += [("extract-features", ["-c", c, "--task", t, *s], lay.features(t)) for t in tasks]
        out.append(("build-subspace", ["-c", c, *s], lay.subspaces(list(cfg.arms)[-1])))
        # an arm that starts from another's adapters (`from`) after that arm
        out += [("finetune", ["-c", c, "--arm", a, "--task", t, *s], lay.adapter(a, t)) for a in cfg.arm_order() for t in tasks]
        for a in cfg.arms:
            last = lay.merged(a, list(cfg.merge.methods)[-1])
            out += [("merge", ["-c", c, "--arm", a, "--method", "all", *s], last),
                    ("select", ["-c", c, "--arm", a, *s], lay.selection(a)),
                    ("diagnose", ["run", "-c", c, "--arm", a, *s], lay.diagnostics(a))]
        out.append(("evaluate", ["-c", c, "--model", "base", "--model", "all/individual", *s],
                    lay.evaluation(ModelRef(list(cfg.arms)[-1], "individual"))))
    return out + [("diagnose", ["summary", "-c", c], None), ("report", ["-c", c], None)]


def _done(folder: Path | None) -> bool:
    """Whether a step's artifact exists: a manifest, or build-subspace's folder for an arm without a subspace
    (the plan checks the last arm's, which build-subspace writes last)."""
    if folder is None or not folder.is_dir():
        return False
    return (folder / Subspace.UNUSED).is_file() or any(folder.rglob("manifest.json"))


def for_seeds(steps: list[tuple[str, list[str], Path | None]], seeds: list[int]) -> list:
    """The steps of these seeds only; the pooled steps (diagnose summary, report: no --seed) need every seed and go."""
    wanted = {str(s) for s in seeds}
    return [st for st in steps if "--seed" in st[1] and st[1][st[1].index("--seed") + 1] in wanted]


@guarded
def main(config: Path = CONFIG,
         skip_done: bool = typer.Option(False, "--skip-done", help="Skip steps whose artifact already has a manifest."),
         only: list[str] = typer.Option(None, "--only", help=f"Run only these commands (repeatable), of {list(STEPS)}."),
         seed: list[int] = typer.Option(None, "--seed", help="Run only these seeds' steps (repeatable), without the pooled "
                                        "summary and report: parallel workers split a study by seed (docs/study.md).")) -> None:
    """Run every stage of the pipeline for CONFIG in this one process (seeds x arms x tasks), then the report."""
    from stages.cli import load_command

    cfg = load_config(config)
    unknown = sorted(set(seed or []) - set(cfg.seeds))
    if unknown:
        raise OsrmError(f"--seed {unknown[0]}: not one of the config's seeds {cfg.seeds} — pick from them or add it under `seeds`")
    steps = [s for s in plan(config, cfg) if not only or s[0] in only]
    steps = for_seeds(steps, seed) if seed else steps
    start = time.time()
    for i, (name, args, folder) in enumerate(steps, 1):
        if skip_done and _done(folder):
            continue
        typer.echo(f"[{i}/{len(steps)} {time.time() - start:6.0f}s] osrm {name} {' '.join(args)}", err=True)
        code = load_command(name).main(args=args, prog_name=f"osrm {name}", standalone_mode=False)
        if code:
            raise OsrmError(f"step `osrm {name} {' '.join(args)}` failed (exit {code}) — fix it, then rerun with --skip-done")
    done = f"report: {Path(cfg.workdir) / 'report' / 'report.md'}" if not seed else "the pooled steps: `osrm run` without --seed"
    typer.echo(f"pipeline finished in {time.time() - start:.0f} s; {done}", err=True)
