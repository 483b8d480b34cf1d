"""`osrm build-subspace`: the OSRM A_t of a task from the OTHER tasks' cached features (docs/osrm.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from osrm_core import regime, subspace
from osrm_core.errors import OsrmError
from osrm_core.lora import INITS
from osrm_pipeline.run import Run, check_arm, open_run
from stages.io.artifacts import Features, Subspace
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.options import CONFIG, SEED, WORKDIR, expand_all, run_overrides
from stages.io.tensors import save_file

TASKS = typer.Option(["all"], "--task", "-t", help="Task name (one of the config's `tasks`). Repeat for several, or 'all' = "
                     "every task of the config: one process then reads each task's features once (what dvc.yaml runs).")
ARMS = typer.Option(["all"], "--arm", "-a", help="Arm that starts from a subspace, init osrm or refit (repeatable); 'all' = every arm of the config, "
                    "those that do not start from a subspace get a folder that says so (a stable DVC dependency).")
REGIME = "regime.json"  # per task: the regime of its layers (osrm_core/regime.py)


@guarded
def main(config: Path = CONFIG, task: list[str] = TASKS, arm: list[str] = ARMS, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Solve A_t per target layer from the leave-one-out second moment of the other tasks' features.

    Reads <workdir>/features/seed<seed>/<every task> (never recomputes them), writes for each ARM and TASK
    <workdir>/subspaces/seed<seed>/<arm>/<task>/subspace.safetensors (one rank x d_in A per module), report.json (objective per
    layer vs a random orthonormal A, own/other-task energy ratios, the layer's regime: rows, d_in, rank, null dim,
    captured other-task energy, and of their held-out tokens), regime.json (the task's layers summarised) and a manifest; prints each arm's
    regime (docs/regimes.md). An arm with a smaller osrm.k than the features uses their first k sampled rows.
    Each task's Gram is formed once per layer and shared by every requested subspace (G_not_t = sum_j G_j - G_t)."""
    base = open_run(config, run_overrides(workdir, seed))
    arms = expand_all(arm, list(base.cfg.arms), lambda a: check_arm(base.cfg, a, config))
    targets = expand_all(task, base.tasks, base.check_task)
    if len(base.tasks) < 2:
        raise OsrmError("tasks: OSRM needs at least 2 tasks (the subspace avoids the OTHER tasks' features) — add tasks")
    features = Features.open_all(base, base.tasks, rank=base.cfg.lora.rank)
    for name in arms:
        run = open_run(config, run_overrides(workdir, seed), arm=name)
        if not INITS[run.cfg.lora.init].needs_subspace:
            _write_unused(run, name, features)
            continue
        for f in features.values():  # an arm may override lora.rank
            f.check_rank(run.cfg.lora.rank)
        caches = {t: f.sample(run.cfg.osrm.k) for t, f in features.items()}  # an arm may override osrm.k
        first = next(iter(features.values())).manifest
        suffixes = tuple(run.spec.target_suffixes(run.cfg.lora.blocks))
        modules = [m for m in first.modules if m.endswith(suffixes)]
        label = f"subspace {name}: " + (targets[0] if len(targets) == 1 else f"{len(targets)} tasks")
        osrm = run.cfg.osrm
        tensors, report = subspace.solve_subspaces(caches, progress(modules, label), targets, osrm.estimator,
                                                   run.cfg.lora.rank, run.cfg.seed, osrm.objective, osrm.contrast_ridge)
        _token_energy(features, tensors, report, modules)
        upstream = {t: f.content_hash for t, f in features.items()}
        for t in targets:
            _write(run, name, t, tensors[t], report[t], upstream, first, modules)
        print(f"{name}: {regime_of(report, targets, run.cfg.lora.rank)}")


def _token_energy(features: dict, tensors: dict, report: dict, modules: list[str]) -> None:
    """Adds regime.token_energy_vs_random to every report row: the share of the other tasks' held-out token energy
    in A's span vs a random subspace (what the merge feels; docs/regimes.md). Left out for features that predate
    held-out Grams."""
    if any(f.manifest.heldout is None for f in features.values()):
        return
    held = {t: f.heldout for t, f in features.items()}
    for m in modules:
        grams, counts = {t: h.gram(m) for t, h in held.items()}, {t: h.count(m) for t, h in held.items()}
        for t, per in tensors.items():
            moment = regime.other_token_moment(grams, counts, t)
            report[t][m]["regime"]["token_energy_vs_random"] = regime.captured_energy(per[m], moment)


def regime_of(report: dict, targets: list[str], rank: int) -> str:
    """The arm's regime line over every target's layers (osrm_core/regime.py; docs/regimes.md)."""
    rows = [r["regime"] for t in targets for r in report[t].values()]
    where = "layers" if len(targets) == 1 else f"layers × tasks ({len(targets)} tasks)"
    return regime.regime_line(regime.summarise(rows, rank), where)


def _write_unused(run: Run, arm: str, features: dict) -> None:
    """A folder per arm that does not start from a subspace, so every finetune stage has the same dependency. An arm
    that starts from another's adapters reads the features too (its conversion's Grams): the folder names their
    hashes, so that the fine-tune that depends on it reruns when they change."""
    out, reads = run.layout.subspaces(arm), INITS[run.cfg.lora.init].start is not None
    body = {"arm": arm, "init": run.cfg.lora.init, "subspace": None}
    if reads:
        body["features"] = {t: f.content_hash for t, f in features.items()}
    with atomic_dir(out) as tmp:
        (tmp / Subspace.UNUSED).write_text(json.dumps(body) + "\n")


def _regime_summary(report: dict, cfg) -> dict:
    """regime.json: the task's layers summarised (regime.summarise), the tolerance and the line (docs/regimes.md)."""
    summary = regime.summarise([r["regime"] for r in report.values()], cfg.lora.rank)
    return {**summary, "estimator": cfg.osrm.estimator, "k": cfg.osrm.k, "rel_tol": regime.REL_TOL,
            "tolerance": regime.TOLERANCE, "line": regime.regime_line(summary)}


def _write(run: Run, arm: str, task: str, tensors: dict, report: dict, upstream: dict, first, modules: list[str]) -> None:
    cfg, out = run.cfg, run.layout.subspace(arm, task)
    meta = {"estimator": cfg.osrm.estimator, "rank": str(cfg.lora.rank), "task": task, "seed": str(cfg.seed)}
    with atomic_dir(out) as tmp:
        save_file(tensors, Subspace.file(tmp), metadata=meta)
        (tmp / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        (tmp / REGIME).write_text(json.dumps(_regime_summary(report, cfg), indent=1, sort_keys=True) + "\n")
        Subspace.seal(tmp, {"osrm": cfg.osrm.model_dump(), "lora.rank": cfg.lora.rank, "lora.blocks": cfg.lora.blocks,
                            "tasks": run.tasks, "task": task, "arm": arm},
                      upstream=upstream, seed=cfg.seed, backbone=first.backbone, arm=arm, task=task, modules=modules,
                      estimator=cfg.osrm.estimator, objective=cfg.osrm.objective, contrast_ridge=cfg.osrm.contrast_ridge,
                      rank=cfg.lora.rank, blocks=cfg.lora.blocks, include_padding=cfg.osrm.include_padding, k=cfg.osrm.k)
    mean_ratio = sum(r["ratio_to_random"] for r in report.values()) / len(report)
    print(f"subspace: {out} ({len(tensors)} layers; objective / random-A objective, mean over layers = {mean_ratio:.3g})")
