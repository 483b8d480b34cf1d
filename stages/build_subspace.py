"""`osrm build-subspace`: the OSRM A_t of a task from the OTHER tasks' cached features."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import typer

from osrm_core import subspace
from osrm_core.errors import OsrmError
from stages.io.atomic import atomic_dir
from stages.io.feature_store import FeatureCache
from stages.io.guard import guarded, progress
from stages.io.manifest import read_manifest, require_same, write_manifest
from stages.io.options import CONFIG, WORKDIR, expand_all
from stages.io.tensors import save_file
from stages.io.run import Run, open_run

SUBSPACE_FILE = "subspace.safetensors"


def _features_fix(task: str) -> str:
    return f"rerun `osrm extract-features --task {task}` with this config"


def check_features(run: Run, task: str, manifest: dict, folder: Path) -> None:
    """Features must come from this backbone, cover the configured blocks, and use this config's estimation
    settings (osrm.k, osrm.include_padding, osrm.seed, data.*): the cache stores the statistics of every
    estimator, but these settings change what is in it, so features made under others are 'from another estimator'."""
    cfg, got, fix = run.cfg, manifest.get("config", {}), _features_fix(task)
    require_same("backbone", run.backbone_identity()["weights"], manifest["backbone"]["weights"], folder,
                 f"{fix} (features were taken on backbone {manifest['backbone'].get('name')!r})")
    missing = sorted(set(cfg.lora.blocks) - set(got.get("lora.blocks", "")))
    if missing:
        raise OsrmError(f"{folder}: features cover lora.blocks={got.get('lora.blocks')!r}, this run needs "
                        f"{cfg.lora.blocks!r} (layer set differs) — {fix}")
    for key in ("k", "include_padding", "seed"):
        require_same(f"osrm.{key}", getattr(cfg.osrm, key), got.get("osrm", {}).get(key), folder, fix)
    require_same("data", cfg.data.model_dump(), got.get("data"), folder, fix)
    require_same("suite", cfg.suite, got.get("suite"), folder, fix)


def _open_features(run: Run, task: str, first: dict | None):
    """A task's feature cache and manifest, checked against this config and the first one read."""
    folder = run.layout.features(task)
    manifest = read_manifest(folder, "extract-features", f"osrm extract-features --task {task}")
    check_rank(run.cfg.lora.rank, manifest.get("dims", {}), folder)
    check_features(run, task, manifest, folder)
    if first is not None:
        require_same("modules", first["modules"], manifest["modules"], folder, _features_fix(task))
    return FeatureCache(folder), manifest


def check_rank(rank: int, dims: dict, folder: Path) -> None:
    """rank < d_in for every layer, or there is no room for a subspace orthogonal to anything."""
    for module, d in sorted(dims.items()):
        if rank >= int(d):
            raise OsrmError(f"lora.rank={rank} is >= d_in={d} of layer {module} ({folder}) — "
                            f"lower lora.rank below {d}")


def task_gram(cache: FeatureCache, module: str, estimator: str) -> tuple[torch.Tensor, int]:
    """The task's contribution to G = H^T H under an estimator, and its row count."""
    if estimator == "token":
        return cache.gram(module), cache.count(module)
    rows = cache.rows(module)
    if estimator == "sample-mean":
        return subspace.sample_gram(rows), rows.shape[0]
    return subspace.task_mean_gram(rows), 1


TASKS = typer.Option(..., "--task", "-t", help="Task name (one of the config's `tasks`). Repeat for several, or 'all' = "
                     "every task of the config: one process then reads each task's features once (what dvc.yaml runs).")


@guarded
def main(config: Path = CONFIG, task: list[str] = TASKS, workdir: Path = WORKDIR) -> None:
    """Solve A_t per target layer from the leave-one-out second moment of the other tasks' features.

    Reads <workdir>/features/<every task> (never recomputes them), writes for each TASK
    <workdir>/subspaces/<task>/subspace.safetensors (one rank x d_in A per module), report.json
    (objective per layer vs a random orthonormal A) and a manifest. Each task's Gram is formed once
    per layer and shared by every requested subspace (G_not_t = sum_j G_j - G_t).
    """
    run = open_run(config, {"workdir": str(workdir) if workdir else None})
    targets = expand_all(task, run.tasks, run.check_task)
    cfg = run.cfg
    if len(run.tasks) < 2:
        raise OsrmError("tasks: OSRM needs at least 2 tasks (the subspace avoids the OTHER tasks' features) — add tasks")
    first, caches, upstream = None, {}, {}
    for t in run.tasks:
        caches[t], m = _open_features(run, t, first)
        first = first or m
        upstream[t] = m["content_hash"]
    suffixes = tuple(run.spec.target_suffixes(cfg.lora.blocks))
    modules = [m for m in first["modules"] if m.endswith(suffixes)]
    tensors, report = {t: {} for t in targets}, {t: {} for t in targets}
    for module in progress(modules, f"subspace {targets[0] if len(targets) == 1 else f'{len(targets)} tasks'}"):
        grams, counts = {}, {}
        for t, cache in caches.items():
            grams[t], counts[t] = task_gram(cache, module, cfg.osrm.estimator)
        for t in targets:
            g, n = subspace.leave_one_out(grams, counts, t)
            if cfg.osrm.estimator == "sample-mean" and n < cfg.lora.rank:
                raise OsrmError(f"osrm.k: only {n} feature rows from other tasks, fewer than lora.rank={cfg.lora.rank} — raise osrm.k")
            tensors[t][module], report[t][module] = subspace.solve_layer(g, cfg.lora.rank, cfg.osrm.seed)
            report[t][module]["rows"] = n
    for t in targets:
        _write(run, t, tensors[t], report[t], upstream, first, modules)


def _write(run: Run, task: str, tensors: dict, report: dict, upstream: dict, first: dict, modules: list[str]) -> None:
    cfg, out = run.cfg, run.layout.subspace(task)
    meta = {"estimator": cfg.osrm.estimator, "rank": str(cfg.lora.rank), "task": task, "seed": str(cfg.osrm.seed)}
    with atomic_dir(out) as tmp:
        save_file(tensors, tmp / SUBSPACE_FILE, metadata=meta)
        (tmp / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        write_manifest(tmp, "build-subspace", {"osrm": cfg.osrm.model_dump(), "lora.rank": cfg.lora.rank,
                       "lora.blocks": cfg.lora.blocks, "tasks": run.tasks, "task": task},
                       upstream=upstream, backbone=first["backbone"], modules=modules,
                       estimator=cfg.osrm.estimator, rank=cfg.lora.rank, blocks=cfg.lora.blocks,
                       include_padding=cfg.osrm.include_padding, seed=cfg.osrm.seed)
    mean_ratio = sum(r["ratio_to_random"] for r in report.values()) / len(report)
    print(f"subspace: {out} ({len(tensors)} layers; objective / random-A objective, mean over layers = {mean_ratio:.3g})")
