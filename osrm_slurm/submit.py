"""What `osrm submit` submits: the resources and place of a job, the script of `submit stage`, and
the jobs of `submit dag` in dependency order (rendered by osrm_slurm/render.py, handed to a
`slurm_jobs.Submitter`, which calls sbatch or, on a dry run, only shows them)."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import yaml

from osrm_core.errors import OsrmError
from osrm_pipeline.pipeline_config import load_config
from osrm_slurm import render as slurm
from osrm_slurm.dag import Job, StageNode, build_job_dag
from osrm_slurm.render import Place, Resources


def default_setup() -> str:
    """Put the interpreter's environment (the venv osrm runs from) on PATH inside the job."""
    bindir = Path(sys.executable).parent
    return f"export PATH={shlex.quote(str(bindir))}:$PATH\nexport OSRM_NO_PROGRESS=${{OSRM_NO_PROGRESS:-1}}"


def place_for(sdir: Path, cwd: Path, setup: str | None) -> Place:
    """Jobs run in `cwd` and write logs and exit markers under `sdir` (`<workdir>/slurm`)."""
    return Place(cwd=str(cwd), log_dir=str(sdir / "logs"), marker_dir=str(sdir / "exit"),
                 setup=default_setup() if setup is None else setup)


def load_resources(path: Path, stage: str, **overrides) -> Resources:
    """resources.yaml defaults for `stage`, with the non-None CLI overrides on top."""
    if not Path(path).is_file():
        raise OsrmError(f"--resources {path} does not exist — pass a YAML like configs/slurm/resources.yaml")
    table = yaml.safe_load(Path(path).read_text()) or {}
    return slurm.resources_for(table, stage).merged(**overrides)


def expand_tasks(config: Path, tasks: list[str]) -> list[str]:
    """`--task all` -> the pipeline's tasks (config `tasks`, else every task of its suite)."""
    if tasks != ["all"]:
        return tasks
    cfg = load_config(config)
    if cfg.tasks:
        return list(cfg.tasks)
    from osrm_pipeline import suites

    return list(suites.list_tasks(suites.resolve_suite(cfg.suite, base_dir=Path(config).parent)))


# ------------------------------------------------------------------ osrm submit stage


@dataclass(frozen=True)
class StageRequest:
    """One `osrm submit stage`: a pipeline stage over `tasks` (several make an array job), its
    options and the arguments after `--`. Construction checks every task's command line."""

    stage: str
    config: str
    tasks: tuple[str, ...] = ()
    arm: str | None = None
    method: str | None = None
    model: str | None = None
    extra: tuple[str, ...] = ()
    launcher: str = "torchrun"
    dependency: str | None = None
    max_parallel: int | None = None

    def __post_init__(self) -> None:
        self.argvs()

    @property
    def name(self) -> str:
        return f"osrm-{self.stage}"

    def argv(self, task: str | None, check: bool = True) -> list[str]:
        return slurm.stage_argv(self.stage, self.config, task, self.arm, self.method, self.model,
                                list(self.extra), check=check)

    def argvs(self) -> list[list[str]]:
        """One `osrm <stage>` argument list per task (one without --task when there is none)."""
        return [self.argv(t) for t in self.tasks or [None]]

    def entry(self, job_id: str) -> dict:
        """The job's line in jobs.jsonl."""
        return {"job_id": job_id, "name": self.name, "stage": self.stage, "tasks": list(self.tasks),
                "array": len(self.argvs()) > 1}


def stage_script(req: StageRequest, res: Resources, place: Place) -> str:
    """The sbatch script: a multi-node fine-tune (nodes or GPUs per node > 1), an array over the
    tasks, or a single job."""
    argvs, desc = req.argvs(), f"osrm {req.stage} tasks={','.join(req.tasks) or '-'}"
    if req.stage == "finetune" and ((res.nodes or 1) > 1 or (res.gpus_per_node or 1) > 1):
        return slurm.multinode_script(req.name, req.argv(None, check=False), req.tasks, res, place, desc,
                                      req.launcher, dependency=req.dependency, max_parallel=req.max_parallel)
    if len(argvs) > 1:
        return slurm.array_script(req.name, {i: "osrm " + shlex.join(a) for i, a in enumerate(argvs)}, res,
                                  place, desc, dependency=req.dependency, max_parallel=req.max_parallel)
    return slurm.single_script(req.name, "osrm " + shlex.join(argvs[0]), res, place, desc,
                               dependency=req.dependency)


# ------------------------------------------------------------------ osrm submit dag


def dag_job_name(job: Job) -> str:
    """`osrm-<family>`: the job's family without its dvc.yaml path, `/` made file-name safe."""
    return "osrm-" + job.name.split(":")[-1].replace("/", "_")


def dag_job_script(job: Job, plan: Mapping[str, StageNode], root: Path, runner: str, res: Resources,
                   place: Place, ids: Mapping[int, str], max_parallel: int | None) -> str:
    """The sbatch script of one planned job, its dependency filled with the submitted ids."""
    dep, desc = job.dependency(ids), f"DVC stages {', '.join(job.stages)} (runner={runner})"
    cmds = [slurm.stage_job_command(plan[s], str(root), runner) for s in job.stages]
    if job.is_array:
        return slurm.array_script(dag_job_name(job), dict(zip(job.indices, cmds)), res, place, desc, dep, max_parallel)
    return slurm.single_script(dag_job_name(job), cmds[0], res, place, desc, dep)


def submit_dag(plan: Mapping[str, StageNode], root: Path, runner: str, resources: Callable[[str], Resources],
               place: Place, submit: Callable[[str, str], str], arrays: bool = True,
               max_parallel: int | None = None) -> list[dict]:
    """Submit the plan's jobs upstream first (`submit(name, script) -> job id`), each with the
    resources of its family; returns their jobs.jsonl entries."""
    ids: dict[int, str] = {}
    entries = []
    for job in build_job_dag(plan, arrays=arrays):
        res = resources(plan[job.stages[0]].family.split(":")[-1])
        ids[job.key] = submit(dag_job_name(job), dag_job_script(job, plan, root, runner, res, place, ids, max_parallel))
        entries.append({"job_id": ids[job.key], "name": dag_job_name(job), "stages": list(job.stages),
                        "indices": list(job.indices) if job.is_array else None, "dependency": job.dependency(ids)})
    return entries
