"""`osrm select`: merge parameters chosen on validation, and the test scores of three variants per method.

One process per (arm, seed) loads the backbone once per label count, each task's adapter and the tokenised
validation and test splits once. For every method of merge.methods that has a grid (merge.sweep) it merges
in memory at each grid point (the same code as `osrm merge`) and scores every task on the whole validation
split; `choose_on_validation` picks the point (ties: the earlier point, the paper default is first). Only
then the test split is scored, for the chosen, default (merge.methods) and λ = 1 parameters, keeping each
task's test logits in dataset order (as `osrm evaluate`) so that the report can bootstrap over rows.
A chosen value on the edge of its grid is recorded per parameter (`edge`, `osrm_core.selection.grid_edges`).
Identical parameters are merged and scored once per split (the task-number curve's all-task point is the
grid's default point; equal variants share one test scoring and are listed in `identical`): docs/merging.md.
"""

from __future__ import annotations

import functools
import json
from contextlib import ExitStack
from pathlib import Path

import torch

from osrm_core.merge import get_method
from osrm_core.merge.engine import CachedFactors, merged_deltas
from osrm_core.report import normalised_score
from osrm_core.selection import beyond_edges, choose_on_validation, grid_edges, param_bounds, params_key
from osrm_core.study import Plan, plan, variant_params
from osrm_pipeline.run import Run, open_run
from osrm_pipeline.task_scores import score_task
from stages.io.adapters import individual_delta
from stages.io.artifacts import Selection
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.merge_inputs import MergeInputs
from stages.io.options import ARM, CONFIG, SEED, WORKDIR, run_overrides
from stages.io.tensors import save_file


class Scorer:
    """Scores body updates on a split; one backbone per label count (`run.pool`), batches made once per split.

    `(split, task, deltas)` -> (metrics incl. "score", logits n x num_labels in dataset order), with
    W = W0 + delta (d_out x d_in) on the target modules and the task's own head."""

    def __init__(self, run: Run, adapters: dict):
        self.run, self.heads = run, {t: a.head() for t, a in adapters.items()}
        self.batches: dict[str, dict] = {"validation": {}, "test": {}}

    @torch.no_grad()
    def __call__(self, split: str, task: str, deltas: dict[str, torch.Tensor]):
        return score_task(self.run, task, deltas, self.heads[task], split, cache=self.batches[split])

    def average(self, split: str, deltas: dict[str, dict[str, torch.Tensor]], tasks: list[str]) -> dict:
        """{"scores": task -> score, "average"} of per-task updates on `split` (no logits kept)."""
        scores = {t: self(split, t, deltas[t])[0]["score"] for t in tasks}
        return {"scores": scores, "average": sum(scores.values()) / len(scores)}


def plans(run: Run) -> dict[str, Plan]:
    """Every method's plan (merge.methods and merge.sweep were checked when the config loaded)."""
    cfg = run.cfg.merge
    return {n: plan(n, p, cfg.sweep.get(n)) for n, p in cfg.methods.items()}


@guarded(preload=("transformers.modeling_utils",))  # imported when the model loads anyway: start-up, not work
def main(config: Path = CONFIG, arm: str = ARM, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Choose each merge method's parameters on validation (grid merge.sweep) and score the chosen, default and
    λ = 1 merges on test; writes selection/seed<s>/<arm>/ (results.json, logits-<variant>.safetensors)."""
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    todo = plans(run)
    inputs = MergeInputs(run, arm)
    scorer = Scorer(run, inputs.adapters)
    individual = {t: scorer(split="validation", task=t, deltas=individual_delta(a))[0]["score"] for t, a in inputs.adapters.items()}
    results, logits = {}, {}
    for name, p in todo.items():
        results[name], logits[name] = select_method(run, p, inputs, scorer, individual)
    _write(run, arm, {"arm": arm, "seed": run.cfg.seed, "tasks": run.tasks, "individual_validation": individual,
                      "methods": results}, logits, inputs.upstream)


class MethodSearch:
    """One method's merges of one arm: each distinct merge computed once (one held at a time: memory of one merge)
    and each distinct (parameters, tasks) scored once per split. Open inside an ExitStack (the merge source)."""

    def __init__(self, run: Run, p: Plan, inputs: MergeInputs, scorer: Scorer, individual: dict, stack: ExitStack):
        self.run, self.p, self.inputs, self.scorer, self.individual = run, p, inputs, scorer, individual
        self.m = get_method(p.method)
        self.source = inputs.source(self.m, stack)
        self.source.factors = {t: CachedFactors(a) for t, a in self.source.factors.items()}
        self.source.grams = functools.cache(self.source.grams) if self.source.grams else None
        self.last: tuple = (None, None)  # (canon(unit), tasks) -> its merge
        self.seen: dict[tuple, dict] = {}  # (parameters, tasks) -> validation result

    def canon(self, params: dict) -> str:
        """Equal after parsing = the same merge ({} and tsv_m's {"alpha": 1.0})."""
        return params_key(self.m.params.model_validate(params).model_dump(mode="json"))

    def unit(self, params: dict) -> dict:
        """The scale-1 point whose update the scale multiplies, where that is exact (scaled_last methods)."""
        return {**params, self.m.scale: 1.0} if self.m.scaled_last else params

    def merge(self, params: dict, subset: list[str]) -> dict:
        """task -> {module: update (d_out x d_in)} of the merge of `subset` at `params`."""
        key = (self.canon(self.unit(params)), tuple(subset))
        if self.last[0] != key:
            self.last = (key, merged_deltas(self.m, self.m.params.model_validate(self.unit(params)), self.source,
                                            self.inputs.modules, self.run.cfg.seed, subset))
        if not self.m.scaled_last:
            return self.last[1]
        lam = self.m.params.model_validate(params).model_dump(by_alias=True)[self.m.scale]
        shared = {k: d.mul(lam) for k, d in self.last[1][subset[0]].items()}  # ties: Δ(λ) = Δ(1).mul_(λ), bit-identical
        return {t: shared for t in subset}

    def validate(self, params: dict, subset: list[str]) -> dict:
        """{"scores", "average", "normalised"} on validation (equal merges scored once)."""
        key = (self.canon(params), tuple(subset))
        if key not in self.seen:
            res = self.scorer.average("validation", self.merge(params, subset), subset)
            self.seen[key] = res | {"normalised": normalised_score(res["scores"], self.individual)}
        return dict(self.seen[key])

    def grid(self) -> list[dict]:
        """Every grid point's validation result, in grid order; scored grouped by their λ = 1 merge (each merged once)."""
        g, tasks = self.p.grid, self.run.tasks
        units = list(dict.fromkeys(self.canon(self.unit(q)) for q in g))
        order = sorted(range(len(g)), key=lambda i: units.index(self.canon(self.unit(g[i]))))
        by_point = {i: self.validate(g[i], tasks) for i in progress(order, f"select {self.inputs.arm}/{self.p.method}")}
        return [{"params": q, **by_point[i]} for i, q in enumerate(g)]

    @property
    def bounds(self) -> dict:
        return param_bounds(self.m.params, self.m.scale)

    def widen(self, grid: list[dict], rounds: int) -> list[dict]:
        """grid plus, for up to `rounds` rounds, the points one step beyond each edge of the validation choice that is
        not a natural bound (osrm_core.selection.beyond_edges), scored on validation only; in grid order, then theirs."""
        grid = list(grid)
        for _ in range(rounds if grid else 0):
            new = beyond_edges(grid, choose_on_validation(grid)["params"], self.bounds)
            if not new:
                break
            grid += [{"params": q, **self.validate(q, self.run.tasks)} for q in new]
        return grid

    def test(self, chosen: dict) -> tuple[dict, dict, list]:
        """(variants: name -> test scores, logits: variant -> task -> test logits, groups of identical variants)."""
        tasks, variants, logits, done, groups = self.run.tasks, {}, {}, {}, {}
        for variant, params in variant_params(self.p, chosen).items():
            key = self.canon(params)
            if key not in done:  # equal parameters are scored once
                deltas = self.merge(params, tasks)
                done[key] = {t: self.scorer("test", t, deltas[t]) for t in tasks}
            scored = done[key]
            scores = {t: scored[t][0]["score"] for t in tasks}
            variants[variant] = {"params": params, "metrics": {t: scored[t][0] for t in tasks}, "scores": scores,
                                 "average": sum(scores.values()) / len(scores)}
            logits[variant] = {t: scored[t][1] for t in tasks}
            groups.setdefault(key, []).append(variant)
        return variants, logits, [g for g in groups.values() if len(g) > 1]


def select_method(run: Run, p: Plan, inputs: MergeInputs, scorer: Scorer, individual: dict) -> tuple[dict, dict]:
    """(results: grid, choice, variants' test scores; logits: variant -> task -> test logits) of one method."""
    tasks = run.tasks
    with ExitStack() as stack:
        search = MethodSearch(run, p, inputs, scorer, individual, stack)
        grid = search.widen(search.grid(), run.cfg.merge.widen)
        chosen = choose_on_validation(grid)["params"] if grid else p.default  # test is never seen before this line
        variants, logits, identical = search.test(chosen)
        curve = [{"n": n, "tasks": tasks[:n], **search.validate(p.default, tasks[:n])}
                 for n in range(2, len(tasks) + 1)] if p.method in run.cfg.merge.sweep_tasks else []
    edge = grid_edges(grid, chosen, search.bounds)
    widened = [g["params"] for g in grid[len(p.grid):]]
    return {"default": p.default, "grid": grid, "widened": widened, "chosen": chosen, "edge": edge, "identical": identical,
            "variants": variants, "tasks_curve": curve}, logits


def _write(run: Run, arm: str, result: dict, logits: dict, upstream: dict) -> None:
    out = run.layout.selection(arm)
    variants = sorted({v for per in logits.values() for v in per})
    rows = {split: {t: len(run.load_task(t)[1][split]) for t in run.tasks} for split in ("validation", "test")}
    with atomic_dir(out) as tmp:
        (tmp / Selection.RESULTS).write_text(json.dumps(result | {"rows": rows}, indent=1, sort_keys=True) + "\n")
        for v in variants:
            save_file({f"{m}::{t}": x for m, per in logits.items() for t, x in per.get(v, {}).items()},
                      tmp / f"logits-{v}.safetensors")
        Selection.seal(tmp, {"arm": arm, "seed": run.cfg.seed, "methods": run.cfg.merge.methods, "sweep": run.cfg.merge.sweep,
                             "widen": run.cfg.merge.widen,
                             "sweep_tasks": run.cfg.merge.sweep_tasks, "tasks": run.tasks, "data": run.cfg.data.model_dump()},
                       upstream=upstream, seed=run.cfg.seed, arm=arm, methods=list(run.cfg.merge.methods), tasks=run.tasks,
                       variants=variants, validation_rows=rows["validation"], test_rows=rows["test"])
    for name, r in result["methods"].items():
        edge = "".join(f", {k} on the grid's {side}" for k, side in r["edge"].items())
        wider = f", {len(r['widened'])} beyond the grid's edges" if r["widened"] else ""
        print(f"select {arm}/{name}: chosen {r['chosen']} ({len(r['grid'])} points{wider}{edge}), test average "
              f"{r['variants']['chosen']['average']:.2f} (default {r['variants']['default']['average']:.2f})")
    print(f"selection: {out / Selection.RESULTS}")
