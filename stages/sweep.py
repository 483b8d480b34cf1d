"""`osrm sweep`: merge-parameter grids (λ, density) and number-of-tasks curves, scored in-process.

`osrm sweep run --arm A --method M` loads the backbone once per label count and each task's adapter,
capped validation rows and tokenised batches once, then for every grid point of `merge.sweep[M]`
merges in memory (one module at a time, as `osrm merge` does) and scores every task on the first
`merge.sweep_max_eval` validation rows. It also scores each individual adapter (the reference of the
normalised score) and, for the methods in `merge.sweep_tasks`, merges of the first 2..T tasks (paper Figure 5).
`osrm sweep plot` draws score vs the swept parameter for each arm (paper Figure 4) and
the normalised score vs the number of tasks merged.
"""

from __future__ import annotations

import functools
import itertools
import json
from contextlib import ExitStack
from pathlib import Path

import torch
import typer

from osrm_core.batching import iterate
from osrm_core.errors import OsrmError
from osrm_core.merge import get_method, parse_params
from osrm_core.merge.engine import CachedFactors, merged_deltas
from osrm_core.report import normalised_score
from osrm_core.scoring import score
from osrm_core.sweep_plots import write_plots
from stages.io.artifacts import Sweep, SweepPlots
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.merge_inputs import MergeInputs
from stages.io.options import ARM, CONFIG, METHOD, SEED, WORKDIR, run_overrides
from stages.io.run import Run, open_run

app = typer.Typer(help="Sweep merge parameters (`run`) and plot the curves (`plot`).", no_args_is_help=True)


class Scorer:
    """Scores body updates on capped validation rows; one backbone per label count (`run.pool`).

    `score(task, deltas)` sets W = W0 + delta (d_out x d_in) for the target modules, loads the task's
    head and returns the task's score (mean of its GLUE-style metrics)."""

    def __init__(self, run: Run, adapters: dict):
        self.run, self.adapters = run, adapters

    @functools.cache
    def _task(self, task: str):
        spec, data = self.run.load_task(task)
        cfg = self.run.cfg
        ds = data["validation"].select(range(min(cfg.merge.sweep_max_eval, len(data["validation"]))))
        batches = list(iterate(self.run.tokenizer, ds, spec.text_fields, cfg.evaluate.batch_size, cfg.data.max_length))
        return spec, batches, torch.as_tensor(list(ds["label"])).numpy(), self.adapters[task].head()

    @torch.no_grad()
    def score(self, task: str, deltas: dict[str, torch.Tensor]) -> float:
        spec, batches, labels, head = self._task(task)
        return score(self.run.pool.get(spec.num_labels, deltas, head), batches, spec, labels)[0]["score"]


def grid_points(run: Run, method: str) -> list[dict]:
    """The product of `merge.sweep[method]`'s value lists, as parameter overrides."""
    grid = run.cfg.merge.sweep.get(method)
    if not grid:
        raise OsrmError(f"merge.sweep has no grid for '{method}' — add e.g. merge.sweep.{method}: {{lambda: [0.1, 0.5, 1.0]}}")
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


@app.command("run")
@guarded
def run_sweep(config: Path = CONFIG, arm: str = ARM, method: str = METHOD, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Score METHOD over its grid `merge.sweep[METHOD]` and over 2..T tasks; writes sweeps/<arm>/<method>/results.json."""
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    m = get_method(method)
    defaults = run.cfg.merge.methods.get(method, {})
    points = [(p, parse_params(m, {**defaults, **p}, f"merge.sweep.{method}")) for p in grid_points(run, method)]
    inputs = MergeInputs(run, arm)
    scorer = Scorer(run, inputs.adapters)
    individual = {t: scorer.score(t, {k: a.delta(k) for k in inputs.modules}) for t, a in inputs.adapters.items()}
    with ExitStack() as stack:
        source = inputs.source(m, stack)
        source.factors = {t: CachedFactors(a) for t, a in source.factors.items()}
        source.grams = functools.cache(source.grams) if source.grams else None

        def evaluate(tasks: list[str], params) -> dict:
            deltas = merged_deltas(m, params, source, inputs.modules, run.cfg.seed, tasks)
            scores = {t: scorer.score(t, deltas[t]) for t in tasks}
            return {"scores": scores, "average": sum(scores.values()) / len(scores), "normalised": normalised_score(scores, individual)}

        grid = [{"params": p, **evaluate(run.tasks, params)} for p, params in progress(points, f"sweep {arm}/{method}")]
        curve = []
        if method in run.cfg.merge.sweep_tasks:
            params = parse_params(m, defaults, f"merge.methods.{method}")
            curve = [{"n": n, "tasks": run.tasks[:n], **evaluate(run.tasks[:n], params)} for n in range(2, len(run.tasks) + 1)]
    _write(run, arm, method, {"arm": arm, "method": method, "max_eval": run.cfg.merge.sweep_max_eval,
                               "individual": individual, "grid": grid, "tasks_curve": curve}, inputs.upstream)


def _write(run: Run, arm: str, method: str, result: dict, upstream: dict) -> None:
    out = run.layout.sweep(arm, method)
    with atomic_dir(out) as tmp:
        (tmp / Sweep.RESULTS).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        Sweep.seal(tmp, {"arm": arm, "method": method, "grid": run.cfg.merge.sweep[method],
                         "methods": run.cfg.merge.methods.get(method, {}), "max_eval": run.cfg.merge.sweep_max_eval,
                         "tasks": run.tasks, "seed": run.cfg.seed}, upstream=upstream, seed=run.cfg.seed,
                   arm=arm, method=method)
    best = max(result["grid"], key=lambda g: g["average"])
    print(f"sweep {arm}/{method}: {len(result['grid'])} points, best {best['params']} average {best['average']:.2f} -> {out / Sweep.RESULTS}")


@app.command("plot")
@guarded
def plot(config: Path = CONFIG, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Plot every finished sweep: sweeps/plots/{params,tasks}.png and sweeps/plots/sweeps.md."""
    run = open_run(config, run_overrides(workdir, seed))
    sweeps = {(a, m): Sweep.open(run, a, m) for a in run.cfg.arms for m in run.cfg.merge.sweep}
    out = run.layout.sweep_plots()
    with atomic_dir(out) as tmp:
        write_plots({k: s.results() for k, s in sweeps.items()}, tmp)
        SweepPlots.seal(tmp, {"sweeps": sorted(f"{i}/{m}" for i, m in sweeps)},
                        upstream={f"{i}/{m}": s.content_hash for (i, m), s in sweeps.items()})
    print(f"sweep plots: {out}")
