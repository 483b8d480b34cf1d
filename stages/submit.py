"""`osrm submit`: run pipeline stages as SLURM jobs (the only module that calls sbatch/squeue).

    osrm submit stage --config pipeline.yaml --stage finetune --task sst2 --init osrm
    osrm submit dag   --config pipeline.yaml            # the whole DVC DAG as dependent jobs
    osrm submit wait  --config pipeline.yaml            # poll squeue, then check the exit markers

Scripts, logs, exit markers and the job record live under `<workdir>/slurm/`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import typer
import yaml

from osrm_core import slurm
from osrm_core.config import load_config
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


def slurm_dir(config: Path) -> Path:
    """`<workdir>/slurm` of the config (workdir relative to the current directory), absolute."""
    return Path(load_config(config).workdir).resolve() / "slurm"


def default_setup() -> str:
    """Put the interpreter's environment (the venv osrm runs from) on PATH inside the job."""
    bindir = Path(sys.executable).parent
    return f"export PATH={shlex.quote(str(bindir))}:$PATH\nexport OSRM_NO_PROGRESS=${{OSRM_NO_PROGRESS:-1}}"


def place_for(sdir: Path, cwd: Path, setup: str | None) -> slurm.Place:
    return slurm.Place(cwd=str(cwd), log_dir=str(sdir / "logs"), marker_dir=str(sdir / "exit"),
                       setup=default_setup() if setup is None else setup)


def load_resources(path: Path, stage: str, **overrides) -> slurm.Resources:
    """resources.yaml defaults for `stage`, with the non-None CLI overrides on top."""
    if not Path(path).is_file():
        raise OsrmError(f"--resources {path} does not exist — pass a YAML like configs/slurm/resources.yaml")
    table = yaml.safe_load(Path(path).read_text()) or {}
    return slurm.resources_for(table, stage).merged(**overrides)


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


def record(sdir: Path, entries: list[dict]) -> Path:
    """Append one submission (a list of jobs) to `<workdir>/slurm/jobs.jsonl`."""
    sdir.mkdir(parents=True, exist_ok=True)
    path = sdir / "jobs.jsonl"
    with path.open("a") as fh:
        fh.write(json.dumps({"submitted": _dt.datetime.now().isoformat(timespec="seconds"), "jobs": entries}) + "\n")
    return path


def emit(name: str, script: str, sdir: Path, dry: bool, counter: list[int]) -> str:
    """Dry run: print the script, return a placeholder id; else submit it."""
    if dry:
        counter[0] += 1
        typer.echo(f"# ---- job {name} (dry-run id DRY{counter[0]}) ----\n{script}")
        return f"DRY{counter[0]}"
    return sbatch(script, sdir, name)


def expand_tasks(config: Path, tasks: list[str]) -> list[str]:
    """`--task all` -> the pipeline's tasks (config `tasks`, else every task of its suite)."""
    if tasks != ["all"]:
        return tasks
    cfg = load_config(config)
    if cfg.tasks:
        return list(cfg.tasks)
    from osrm_core import tasks as suites

    return list(suites.list_tasks(cfg.suite))


@app.command("stage", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@guarded
def stage_cmd(ctx: typer.Context, config: Path = CONFIG,
              stage: str = typer.Option(..., "--stage", "-s", help=f"One of {', '.join(slurm.CLI_STAGES)}."),
              task: list[str] = typer.Option(None, "--task", "-t", help="Task; repeat (or `all`) for an array job over tasks."),
              init: str = typer.Option(None, "--init", help="gaussian|osrm (finetune, merge)."),
              method: str = typer.Option(None, "--method", help="Merge method (merge)."),
              model: str = typer.Option(None, "--model", help="base|<init>/individual|<init>/<method> (evaluate)."),
              partition: str = PARTITION, time_: str = typer.Option(None, "--time", help="Wall-clock limit, e.g. 04:00:00."),
              cpus_per_task: int = CPUS, mem: str = MEM, nodes: int = NODES, gpus_per_node: int = GPUS,
              launcher: str = typer.Option("torchrun", "--launcher", help="Multi-node finetune: torchrun or srun (one task per GPU)."),
              dependency: str = typer.Option(None, "--dependency", help="Raw sbatch dependency, e.g. afterok:123."),
              setup: str = SETUP, resources: Path = RESOURCES, max_parallel: int = MAX_PAR, dry_run: bool = DRY) -> None:
    """Submit one stage command (an array job when several tasks are given). Arguments after `--`
    are passed to the stage unchanged."""
    tasks = expand_tasks(config, list(task or []))
    res = load_resources(resources, stage, partition=partition, time=time_, cpus_per_task=cpus_per_task,
                         mem=mem, nodes=nodes, gpus_per_node=gpus_per_node)
    argv = [slurm.stage_argv(stage, str(config), t, init, method, model, ctx.args) for t in tasks or [None]]
    sdir, name = slurm_dir(config), f"osrm-{stage}"
    place, desc = place_for(sdir, Path.cwd(), setup), f"osrm {stage} tasks={','.join(tasks) or '-'}"
    if stage == "finetune" and ((res.nodes or 1) > 1 or (res.gpus_per_node or 1) > 1):
        base = slurm.stage_argv(stage, str(config), None, init, method, model, ctx.args, check=False)
        script = slurm.multinode_script(name, base, tasks, res, place, desc, launcher, dependency=dependency,
                                        max_parallel=max_parallel)
    elif len(argv) > 1:
        script = slurm.array_script(name, {i: "osrm " + shlex.join(a) for i, a in enumerate(argv)}, res, place,
                                    desc, dependency=dependency, max_parallel=max_parallel)
    else:
        script = slurm.single_script(name, "osrm " + shlex.join(argv[0]), res, place, desc, dependency=dependency)
    job_id = emit(name, script, sdir, dry_run, [0])
    if not dry_run:
        record(sdir, [{"job_id": job_id, "name": name, "stage": stage, "tasks": tasks,
                       "array": len(argv) > 1}])
        typer.echo(job_id)


# ------------------------------------------------------------------ the DVC DAG


def dvc_stages(root: Path) -> tuple[dict[str, slurm.StageNode], set[str]]:
    """Expanded DVC stages that have a command, their upstream edges (from `repo.index.graph`),
    and the addresses `dvc status` reports as changed."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            graph, runnable = repo.index.graph, [s for s in repo.index.stages if s.cmd]
            addr = {s: s.addressing for s in runnable}
            nodes = {s.addressing: slurm.StageNode(
                s.addressing, tuple(s.cmd if isinstance(s.cmd, list) else [s.cmd]),
                os.path.relpath(s.wdir, repo.root_dir), tuple(addr[d] for d in graph.successors(s) if d in addr))
                for s in runnable}
            changed = set(repo.status()) & set(nodes)
    except DvcException as err:
        raise OsrmError(f"DVC cannot read the pipeline in {root}: {err} — run `dvc dag` there to see why") from None
    return nodes, changed


def find_root(start: Path) -> Path:
    """The DVC repository that contains `start`."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Path(Repo.find_root(str(start)))
    except NotDvcRepoError:
        raise OsrmError(f"no DVC repository at or above {start} — pass --repo, or run `dvc init` there") from None


def job_script(job: slurm.Job, plan: dict, root: Path, runner: str, res: slurm.Resources,
               place: slurm.Place, ids: dict[int, str], max_parallel: int | None) -> str:
    """The sbatch script of one planned job, its dependency filled with the submitted ids."""
    dep, desc = job.dependency(ids), f"DVC stages {', '.join(job.stages)} (runner={runner})"
    cmds = [slurm.stage_job_command(plan[s], str(root), runner) for s in job.stages]
    if job.is_array:
        return slurm.array_script(_job_name(job), dict(zip(job.indices, cmds)), res, place, desc, dep, max_parallel)
    return slurm.single_script(_job_name(job), cmds[0], res, place, desc, dep)


def _job_name(job: slurm.Job) -> str:
    return "osrm-" + job.name.split(":")[-1].replace("/", "_")


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
    root = find_root((repo or config.resolve().parent).resolve())
    nodes, changed = dvc_stages(root)
    chosen = slurm.select(nodes, [t for arg in targets or [] for t in arg.split(",") if t])
    todo = set(chosen) if force else slurm.downstream(chosen, changed & set(chosen))
    if not todo:
        typer.echo("nothing to submit: every selected stage is up to date (use --force to rerun)")
        return
    plan = slurm.restrict(chosen, todo)
    sdir, ids, entries, counter = slurm_dir(config), {}, [], [0]
    place = place_for(sdir, root, setup)
    for job in slurm.build_job_dag(plan, arrays=not no_arrays):
        family = plan[job.stages[0]].family.split(":")[-1]
        res = load_resources(resources, family, partition=partition, time=time_, cpus_per_task=cpus_per_task, mem=mem)
        script = job_script(job, plan, root, runner, res, place, ids, max_parallel)
        ids[job.key] = emit(_job_name(job), script, sdir, dry_run, counter)
        entries.append({"job_id": ids[job.key], "name": _job_name(job), "stages": list(job.stages),
                        "indices": list(job.indices) if job.is_array else None, "dependency": job.dependency(ids)})
    for e in entries:
        typer.echo(f"{e['job_id']}\t{e['name']}\t{len(e['stages'])} stage(s)\t{e['dependency'] or '-'}")
    if not dry_run:
        typer.echo(f"recorded in {record(sdir, entries)}")


# ------------------------------------------------------------------ waiting for jobs


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


def last_submission(sdir: Path) -> list[dict]:
    path = sdir / "jobs.jsonl"
    if not path.is_file():
        raise OsrmError(f"no submission recorded in {path} — submit with `osrm submit stage|dag` first")
    return json.loads(path.read_text().strip().splitlines()[-1])["jobs"]


@app.command("wait")
@guarded
def wait_cmd(config: Path = CONFIG,
             timeout: float = typer.Option(3600.0, "--timeout", help="Seconds before giving up."),
             poll: float = typer.Option(2.0, "--poll", help="Seconds between squeue polls.")) -> None:
    """Wait for the last submission's jobs to leave the queue, then report each exit marker."""
    sdir = slurm_dir(config)
    jobs = last_submission(sdir)
    wait_for([j["job_id"] for j in jobs], timeout, poll)
    failed = 0
    for job in jobs:
        for tag, code in exit_codes(sdir / "exit", job).items():
            failed += code != 0
            typer.echo(f"{tag}\t{job['name']}\t{'never ran (cancelled?)' if code is None else f'exit {code}'}")
    if failed:
        raise OsrmError(f"{failed} job(s) failed or never ran — see the logs in {sdir / 'logs'}")
