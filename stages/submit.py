"""`osrm submit`: run pipeline stages as SLURM jobs (docs/slurm.md).

    osrm submit stage --config pipeline.yaml --stage finetune --task sst2 --arm osrm
    osrm submit dag   --config pipeline.yaml            # the whole DVC DAG as dependent jobs
    osrm submit wait  --config pipeline.yaml            # poll squeue, then check the exit markers

Scripts, logs, exit markers and the job record live under `<workdir>/slurm/`. What to submit is
planned in osrm_slurm/submit.py (DVC read by osrm_slurm/dvc.py); osrm_slurm/jobs.py is
the only module that calls sbatch/squeue.
"""

from __future__ import annotations

import functools
from pathlib import Path

import typer

from osrm_slurm import dvc as slurm_dvc, jobs as slurm_jobs, render as slurm, submit as slurm_submit
from osrm_core.errors import OsrmError
from stages.io.guard import guarded

app = typer.Typer(help="Submit pipeline stages (one, an array over tasks, or the whole DVC DAG) to SLURM.",
                  no_args_is_help=True)

CONFIG = typer.Option(Path("pipeline.yaml"), "--config", "-c", help="pipeline.yaml (its `workdir` holds slurm/).")
DRY = typer.Option(False, "--dry-run", help="Print the sbatch script(s); submit nothing.")
PARTITION = typer.Option(None, "--partition", "-p", help="SLURM partition.")
TIME = typer.Option(None, "--time", help="Wall-clock limit, e.g. 04:00:00.")
CPUS = typer.Option(None, "--cpus-per-task", help="CPUs per task.")
MEM = typer.Option(None, "--mem", help="Memory per node, e.g. 16G.")
NODES = typer.Option(None, "--nodes", help="Nodes (finetune with >1 launches torchrun across them).")
GPUS = typer.Option(None, "--gpus-per-node", help="GPUs per node (finetune with >1 launches one rank per GPU).")
SETUP = typer.Option(None, "--setup", help="Shell lines run before the command (default: put this venv on PATH).")
RESOURCES = typer.Option(slurm.TEMPLATE_DIR / "resources.yaml", "--resources", help="Per-stage defaults (YAML).")
MAX_PAR = typer.Option(None, "--max-parallel", help="Run at most N array members at once (--array ...%N).")


@app.command("stage", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@guarded
def stage_cmd(ctx: typer.Context, config: Path = CONFIG,
              stage: str = typer.Option(..., "--stage", "-s", help=f"One of {', '.join(slurm.CLI_STAGES)}."),
              task: list[str] = typer.Option(None, "--task", "-t", help="Task; repeat (or `all`) for an array job over tasks."),
              arm: str = typer.Option(None, "--arm", help="An arm of the config (finetune, merge)."),
              method: str = typer.Option(None, "--method", help="Merge method (merge)."),
              model: str = typer.Option(None, "--model", help="base|<arm>/individual|<arm>/<method> (evaluate)."),
              partition: str = PARTITION, time_: str = typer.Option(None, "--time", help="Wall-clock limit, e.g. 04:00:00."),
              cpus_per_task: int = CPUS, mem: str = MEM, nodes: int = NODES, gpus_per_node: int = GPUS,
              launcher: str = typer.Option("torchrun", "--launcher", help="Multi-node finetune: torchrun or srun (one task per GPU)."),
              dependency: str = typer.Option(None, "--dependency", help="Raw sbatch dependency, e.g. afterok:123."),
              setup: str = SETUP, resources: Path = RESOURCES, max_parallel: int = MAX_PAR, dry_run: bool = DRY) -> None:
    """Submit one stage command (an array job when several tasks are given). Arguments after `--`
    are passed to the stage unchanged."""
    tasks = slurm_submit.expand_tasks(config, list(task or []))
    res = slurm_submit.load_resources(resources, stage, partition=partition, time=time_, cpus_per_task=cpus_per_task,
                                      mem=mem, nodes=nodes, gpus_per_node=gpus_per_node)
    req = slurm_submit.StageRequest(stage, str(config), tuple(tasks), arm, method, model, tuple(ctx.args),
                                    launcher, dependency, max_parallel)
    sdir = slurm_jobs.slurm_dir(config)
    script = slurm_submit.stage_script(req, res, slurm_submit.place_for(sdir, Path.cwd(), setup))
    job_id = slurm_jobs.Submitter(sdir, dry_run, typer.echo)(req.name, script)
    if not dry_run:
        slurm_jobs.record(sdir, [req.entry(job_id)])
        typer.echo(job_id)


# ------------------------------------------------------------------ the DVC DAG


@app.command("dag")
@guarded
def dag_cmd(config: Path = CONFIG,
            targets: list[str] = typer.Option(None, "--targets", "-t", help="Stages or families to build (with their upstream); repeat or comma-separate. Default: all."),
            repo: Path = typer.Option(None, "--repo", help="DVC repository root (default: the one holding --config)."),
            runner: str = typer.Option("cmd", "--runner", help="cmd: stage command + `dvc commit` (parallel); repro: `dvc repro --single-item` (serialised by DVC's lock)."),
            force: bool = typer.Option(False, "--force", help="Submit every selected stage, even those DVC reports up to date."),
            no_arrays: bool = typer.Option(False, "--no-arrays", help="One job per stage instead of array jobs per foreach family."),
            partition: str = PARTITION, time_: str = TIME, cpus_per_task: int = CPUS, mem: str = MEM,
            setup: str = SETUP, resources: Path = RESOURCES, max_parallel: int = MAX_PAR, dry_run: bool = DRY) -> None:
    """Submit the DVC pipeline as SLURM jobs chained with --dependency=afterok (aftercorr for matched arrays)."""
    root = slurm_dvc.find_root((repo or config.resolve().parent).resolve())
    nodes, changed = slurm_dvc.read_stages(root)
    plan = slurm.to_submit(nodes, changed, [t for arg in targets or [] for t in arg.split(",") if t], force)
    if not plan:
        typer.echo("nothing to submit: every selected stage is up to date (use --force to rerun)")
        return
    sdir = slurm_jobs.slurm_dir(config)
    family_resources = functools.partial(slurm_submit.load_resources, resources, partition=partition, time=time_,
                                         cpus_per_task=cpus_per_task, mem=mem)
    entries = slurm_submit.submit_dag(plan, root, runner, family_resources, slurm_submit.place_for(sdir, root, setup),
                                      slurm_jobs.Submitter(sdir, dry_run, typer.echo), arrays=not no_arrays,
                                      max_parallel=max_parallel)
    for e in entries:
        typer.echo(f"{e['job_id']}\t{e['name']}\t{len(e['stages'])} stage(s)\t{e['dependency'] or '-'}")
    if not dry_run:
        typer.echo(f"recorded in {slurm_jobs.record(sdir, entries)}")


# ------------------------------------------------------------------ waiting for jobs


@app.command("wait")
@guarded
def wait_cmd(config: Path = CONFIG,
             timeout: float = typer.Option(3600.0, "--timeout", help="Seconds before giving up."),
             poll: float = typer.Option(2.0, "--poll", help="Seconds between squeue polls.")) -> None:
    """Wait for the last submission's jobs to leave the queue, then report each exit marker."""
    sdir = slurm_jobs.slurm_dir(config)
    failed = 0
    for tag, name, code in slurm_jobs.wait_last(sdir, timeout, poll):
        failed += code != 0
        typer.echo(f"{tag}\t{name}\t{'never ran (cancelled?)' if code is None else f'exit {code}'}")
    if failed:
        raise OsrmError(f"{failed} job(s) failed or never ran — see the logs in {sdir / 'logs'}")
