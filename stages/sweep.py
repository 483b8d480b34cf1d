"""`osrm sweep`: merge-parameter grids (λ, density) and number-of-tasks curves, scored in-process.

`osrm sweep run --init I --method M` loads the backbone once per label count and each task's adapter,
capped validation rows and tokenised batches once, then for every grid point of `merge.sweep[M]`
merges in memory (one module at a time, as `osrm merge` does) and scores every task on the first
`merge.sweep_max_eval` validation rows. It also scores each individual adapter (the reference of the
normalised score) and, for the methods in `merge.sweep_tasks`, merges of the first 2..T tasks (paper Figure 5).
`osrm sweep plot` draws score vs the swept parameter for LoRA and LoRA+OSRM (paper Figure 4) and
the normalised score vs the number of tasks merged.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
import typer

from osrm_core.batching import iterate
from osrm_core.errors import OsrmError
from osrm_core.merge import get_method, parse_params
from osrm_core.merge.types import ModuleUpdates
from osrm_core.metrics import compute, predictions
from osrm_core.train import predict
from stages.io.atomic import atomic_dir
from stages.io.adapters import open_adapters
from stages.io.feature_store import FeatureCache
from stages.io.guard import guarded, progress
from stages.io.manifest import read_manifest, write_manifest
from stages.io.options import CONFIG, INIT_REQ, METHOD, WORKDIR
from stages.io.run import Run, open_run

app = typer.Typer(help="Sweep merge parameters (`run`) and plot the curves (`plot`).", no_args_is_help=True)
RESULTS = "results.json"


def sweep_dir(run: Run, init: str, method: str) -> Path:
    return run.layout.root / "sweeps" / init / method


class Scorer:
    """Scores body updates on capped validation rows; one backbone per label count (`run.pool`).

    `score(task, deltas)` sets W = W0 + delta (d_out x d_in) for the target modules, loads the task's
    head and returns the task's score (mean of its GLUE-style metrics)."""

    def __init__(self, run: Run, adapters: dict):
        self.run, self.adapters = run, adapters
        self.data: dict[str, tuple] = {}

    def _task(self, task: str):
        if task not in self.data:
            spec, data = self.run.load_task(task)
            ds = data["validation"].select(range(min(self.run.cfg.merge.sweep_max_eval, len(data["validation"]))))
            cfg = self.run.cfg
            batches = list(iterate(self.run.tokenizer, ds, spec.text_fields, cfg.evaluate.batch_size, cfg.data.max_length))
            self.data[task] = (spec, batches, torch.as_tensor(list(ds["label"])).numpy(), self.adapters[task].head())
        return self.data[task]

    @torch.no_grad()
    def score(self, task: str, deltas: dict[str, torch.Tensor]) -> float:
        spec, batches, labels, head = self._task(task)
        model = self.run.pool.get(spec.num_labels, deltas, head)
        logits = predict(model, iter(batches))
        return compute(spec.metric, predictions(logits.numpy(), spec.is_regression), labels)["score"]


class Merger:
    """In-memory merges of any subset of tasks; factors (and Grams) read once per task."""

    def __init__(self, run: Run, adapters: dict, modules: list[str], method):
        if "fishers" in method.needs or "base" in method.needs:
            raise OsrmError(f"`osrm sweep` does not support merge method '{method.name}' (needs {method.needs}); sweep another method")
        self.method, self.modules = method, modules
        self.factors = {t: {m: a.factors(m) for m in modules} for t, a in adapters.items()}
        self.scales = {t: a.scale for t, a in adapters.items()}
        self.grams = None
        if "grams" in method.needs:
            caches = {t: FeatureCache(run.layout.features(t)) for t in adapters}
            self.grams = {t: {m: c.gram(m).float() for m in modules} for t, c in caches.items()}
        self.seed = run.cfg.merge.seed

    def deltas(self, tasks: list[str], params) -> dict[str, dict[str, torch.Tensor]]:
        """task -> {module: merged update d_out x d_in} (the same dict for every task unless per-task)."""
        gen = torch.Generator().manual_seed(self.seed)
        shared, own = {}, {t: {} for t in tasks}
        for m in self.modules:
            A, B = zip(*(self.factors[t][m] for t in tasks))
            upd = ModuleUpdates(A=list(A), B=list(B), scale=[self.scales[t] for t in tasks], name=m,
                                grams=[self.grams[t][m] for t in tasks] if self.grams else None)
            res = self.method.fn(upd, params, gen)
            shared[m] = res.delta
            for t, d in zip(tasks, res.per_task or []):
                own[t][m] = d
        return {t: (own[t] if self.method.per_task else shared) for t in tasks}


def grid_points(run: Run, method: str) -> list[dict]:
    """The product of `merge.sweep[method]`'s value lists, as parameter overrides."""
    grid = run.cfg.merge.sweep.get(method)
    if not grid:
        raise OsrmError(f"merge.sweep has no grid for '{method}' — add e.g. merge.sweep.{method}: {{lambda: [0.1, 0.5, 1.0]}}")
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def point_params(run: Run, m, method: str, point: dict):
    """`merge.methods[method]` with the grid point's values over it, validated (errors name merge.sweep.<method>.<field>)."""
    return parse_params(m, {**run.cfg.merge.methods.get(method, {}), **point}, f"merge.sweep.{method}")


def summarise(scores: dict[str, float], individual: dict[str, float]) -> dict:
    """Average score and normalised score (mean of merged/individual x 100 over tasks with a positive reference)."""
    ratios = [scores[t] / individual[t] for t in scores if individual[t] > 0]
    return {"scores": scores, "average": sum(scores.values()) / len(scores),
            "normalised": 100.0 * sum(ratios) / len(ratios) if ratios else 0.0}


def evaluate_merge(scorer: Scorer, merger: Merger, tasks: list[str], params, individual: dict) -> dict:
    deltas = merger.deltas(tasks, params)
    return summarise({t: scorer.score(t, deltas[t]) for t in tasks}, individual)


@app.command("run")
@guarded
def run_sweep(config: Path = CONFIG, init: str = INIT_REQ, method: str = METHOD, workdir: Path = WORKDIR) -> None:
    """Score METHOD over its grid `merge.sweep[METHOD]` and over 2..T tasks; writes sweeps/<init>/<method>/results.json."""
    run = open_run(config, {"workdir": str(workdir) if workdir else None})
    m = get_method(method)
    points = grid_points(run, method)
    adapters, upstream = open_adapters(run, init)
    modules = next(iter(adapters.values())).modules
    scorer, merger = Scorer(run, adapters), Merger(run, adapters, modules, m)
    individual = {t: scorer.score(t, {k: adapters[t].delta(k) for k in modules}) for t in run.tasks}
    grid = [{"params": p, **evaluate_merge(scorer, merger, run.tasks, point_params(run, m, method, p), individual)}
            for p in progress(points, f"sweep {init}/{method}")]
    curve = []
    if method in run.cfg.merge.sweep_tasks:
        params = parse_params(m, run.cfg.merge.methods.get(method, {}), f"merge.methods.{method}")
        curve = [{"n": n, "tasks": run.tasks[:n], **evaluate_merge(scorer, merger, run.tasks[:n], params, individual)}
                 for n in range(2, len(run.tasks) + 1)]
    out = sweep_dir(run, init, method)
    result = {"init": init, "method": method, "max_eval": run.cfg.merge.sweep_max_eval, "individual": individual,
              "grid": grid, "tasks_curve": curve}
    with atomic_dir(out) as tmp:
        (tmp / RESULTS).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        write_manifest(tmp, "sweep", {"init": init, "method": method, "grid": run.cfg.merge.sweep[method],
                       "methods": run.cfg.merge.methods.get(method, {}), "max_eval": run.cfg.merge.sweep_max_eval,
                       "tasks": run.tasks, "seed": run.cfg.merge.seed}, upstream=upstream, init=init, method=method)
    best = max(grid, key=lambda g: g["average"])
    print(f"sweep {init}/{method}: {len(grid)} points, best {best['params']} average {best['average']:.2f} -> {out / RESULTS}")


LABEL = {"gaussian": "LoRA", "osrm": "LoRA+OSRM"}


def _axis(result: dict) -> str:
    """The swept parameter of a grid: the first one with more than one value."""
    keys = list(result["grid"][0]["params"])
    varied = [k for k in keys if len({g["params"][k] for g in result["grid"]}) > 1]
    return (varied or keys)[0]


def plot_params(results: dict, path: Path, plt) -> None:
    """Paper Figure 4: average score vs the swept parameter, one panel per method, LoRA vs LoRA+OSRM."""
    methods = sorted({m for _, m in results})
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.3), squeeze=False)
    for ax, method in zip(axes[0], methods):
        for (init, m), res in sorted(results.items()):
            if m == method:
                key = _axis(res)
                xs = [g["params"][key] for g in res["grid"]]
                ax.plot(xs, [g["average"] for g in res["grid"]], marker="o", label=LABEL.get(init, init))
                ax.set_xlabel("λ" if key == "lambda" else key)
        ax.set_title(method)
        ax.set_ylabel("average score")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tasks(results: dict, path: Path, plt) -> None:
    """Paper Figure 5: normalised score vs the number of tasks merged, per init and method."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for (init, method), res in sorted(results.items()):
        if res["tasks_curve"]:
            curve = res["tasks_curve"]
            ax.plot([c["n"] for c in curve], [c["normalised"] for c in curve], marker="o", label=f"{LABEL.get(init, init)} · {method}")
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("number of tasks merged")
    ax.set_ylabel("normalised score (% of individual)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sweep_table(results: dict) -> str:
    """Markdown: one row per (init, method, grid point)."""
    lines = ["| init | method | params | average | normalised |", "|---|---|---|---|---|"]
    for (init, method), res in sorted(results.items()):
        for g in res["grid"]:
            p = ", ".join(f"{k}={v:g}" for k, v in g["params"].items())
            lines.append(f"| {LABEL.get(init, init)} | {method} | {p} | {g['average']:.2f} | {g['normalised']:.1f} |")
    return "\n".join(lines) + "\n"


def write_plots(results: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_params(results, folder / "params.png", plt)
    plot_tasks(results, folder / "tasks.png", plt)
    (folder / "sweeps.md").write_text(sweep_table(results))
    flat = {f"{i}/{m}": r for (i, m), r in results.items()}
    (folder / "sweeps.json").write_text(json.dumps(flat, indent=1, sort_keys=True) + "\n")


@app.command("plot")
@guarded
def plot(config: Path = CONFIG, workdir: Path = WORKDIR) -> None:
    """Plot every finished sweep: sweeps/plots/{params,tasks}.png and sweeps/plots/sweeps.md."""
    run = open_run(config, {"workdir": str(workdir) if workdir else None})
    results, upstream = {}, {}
    for init in run.cfg.inits:
        for method in run.cfg.merge.sweep:
            folder = sweep_dir(run, init, method)
            upstream[f"{init}/{method}"] = read_manifest(folder, "sweep", f"osrm sweep run --init {init} --method {method}")["content_hash"]
            results[(init, method)] = json.loads((folder / RESULTS).read_text())
    out = run.layout.root / "sweeps" / "plots"
    with atomic_dir(out) as tmp:
        write_plots(results, tmp)
        write_manifest(tmp, "sweep-plot", {"sweeps": sorted(upstream)}, upstream=upstream)
    print(f"sweep plots: {out}")
