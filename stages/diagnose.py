"""`osrm diagnose`: why a merge works or not, from token Grams and adapter factors alone (docs/diagnostics.md).

`run` diagnoses one arm of one seed (interference E, own/other energy of A at init and after training, A
drift), headline on held-out Grams (validation rows that built no subspace), in-sample (the training sample's
Grams, which built the subspaces) beside them (docs/diagnostics.md, "Held-out and in-sample"); `summary` pools every arm over seeds into one table and two figures; `ablate` scores tasks under their
own scaled update vs the other tasks' interference (forward passes, validation split by default).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import typer

from osrm_core import diagnose, diagnose_plots, lora
from osrm_core.ablation import VARIANTS, ablation_table, ablation_updates, others_sum
from osrm_core.diagnose_summary import one_thread, pool, scalars, summary_md
from osrm_core.errors import OsrmError
from osrm_pipeline.run import Run, open_run
from osrm_pipeline.task_scores import score_task
from stages.io.adapters import individual_delta
from stages.io.artifacts import Diagnostics, DiagnosticsSummary, Features, Subspace, TaskAdapter
from stages.io.atomic import atomic_dir, write_json_atomic
from stages.io.guard import guarded, progress
from stages.io.options import ARM, CONFIG, SEED, WORKDIR, expand_all, run_overrides

app = typer.Typer(help="Interference diagnostics of trained adapters (no forward pass; docs/diagnostics.md).", no_args_is_help=True)
HEATMAP = "heatmap.png"
SEEDS = typer.Option(None, "--seed", help="Seeds to pool (repeatable); default: every seed of the config.")
Nested = dict[str, dict[str, torch.Tensor]]


def read_grams(features: dict[str, Features], modules: list[str], heldout: bool = False) -> tuple[Nested, dict[str, dict[str, int]]]:
    """({task: {module: G (d_in x d_in) float64}}, {task: {module: token count}}) of the training sample (in-sample),
    or with `heldout` of the held-out validation rows; modules sharing an input (q/v of one block) share one tensor."""
    grams, counts = {}, {}
    for t, f in features.items():
        cache, seen = (f.heldout if heldout else f.cache), {}
        for m in modules:
            key = cache.aliases.get(m, m)
            if key not in seen:
                seen[key] = (cache.gram(m), cache.count(m))
        grams[t] = {m: seen[cache.aliases.get(m, m)][0] for m in modules}
        counts[t] = {m: seen[cache.aliases.get(m, m)][1] for m in modules}
    return grams, counts


def initial_a(run: Run, arm: str, trained: Nested) -> Nested | None:
    """{task: {module: A_0 (r x d_in) float32}} as finetune started it: the init's own A_0 (osrm_core.lora.INITS
    a0: the subspace file for osrm, the seeded orthonormal draw) for the trained modules' shapes, rescaled to
    lora.a_norm as finetune does (lora.initialise); None when the init has no a0 (gaussian, kaiming: PEFT's draw
    is not saved; refit, posthoc: they start at a converted update)."""
    method = lora.INITS[run.cfg.lora.init]
    if method.a0 is None:
        return None
    norm, out = run.cfg.lora.a0_norm, {}
    for t, mods in trained.items():
        sub = Subspace.open(run, arm, t).tensors() if method.needs_subspace else None
        raw = method.a0({m: tuple(a.shape) for m, a in mods.items()}, run.cfg.seed, sub)
        out[t] = {m: lora.scale_to_norm(a.float(), lora.target_norm(norm, *a.shape)) for m, a in raw.items()}
    return out


def diagnose_arm(run: Run, arm: str) -> tuple[dict, list[str], dict[str, str]]:
    """(diagnostics.json content, modules, upstream hashes) of one arm of one seed."""
    features = Features.open_all(run, run.tasks)
    adapters = TaskAdapter.open_all(run, arm)
    modules = next(iter(adapters.values())).peft.modules
    factors = {t: {m: (*a.peft.factors(m), a.peft.scale) for m in modules} for t, a in adapters.items()}
    trained = {t: {m: f[0] for m, f in fs.items()} for t, fs in factors.items()}
    init = initial_a(run, arm, trained)

    def on(grams: Nested, counts: dict[str, dict[str, int]]) -> dict:
        return {"interference": diagnose.interference(grams, factors).as_dict(),
                "energy": {"trained": diagnose.energy_shares(grams, counts, trained).as_dict(),
                           "init": None if init is None else diagnose.energy_shares(grams, counts, init).as_dict()}}

    held = {t: f.heldout for t, f in features.items()}
    with one_thread():
        result = {"arm": arm, "init": run.cfg.lora.init, "seed": run.cfg.seed,
                  "grams": {"heldout": {"split": next(iter(held.values())).split, "rows": {t: h.n_rows for t, h in held.items()}},
                            "in_sample": {"split": "train", "rows": {t: f.manifest.rows for t, f in features.items()}}},
                  **on(*read_grams(features, modules, heldout=True)),  # the headline: held-out Grams
                  "in_sample": on(*read_grams(features, modules)),
                  "drift": None if init is None else diagnose.drift(trained, init).as_dict()}
    upstream = {f"features/{t}": f.content_hash for t, f in features.items()}
    upstream |= {f"adapters/{t}": a.content_hash for t, a in adapters.items()}
    return result, modules, upstream


@app.command("run")
@guarded
def run_arm(config: Path = CONFIG, arm: str = ARM, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Diagnose ARM's adapters of one seed from the cached token Grams (no forward pass).

    Writes <workdir>/diagnostics/seed<seed>/<arm>/: diagnostics.json (E per module, energy shares at init and
    after training on held-out Grams; the same on in-sample Grams under `in_sample`; A drift), summary.json (scalars:
    DVC metrics; in-sample ones prefixed in_sample_), heatmap.png (held-out E) and a manifest.
    """
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    result, modules, upstream = diagnose_arm(run, arm)
    summary = scalars(result)
    out = run.layout.diagnostics(arm)
    with atomic_dir(out) as tmp:
        (tmp / Diagnostics.RESULTS).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        (tmp / Diagnostics.SUMMARY).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        diagnose_plots.heatmaps({arm: diagnose.Interference.from_json(result["interference"])}, tmp / HEATMAP)
        Diagnostics.seal(tmp, {"arm": arm, "init": run.cfg.lora.init, "lora": run.cfg.lora.model_dump(), "tasks": run.tasks,
                               "seed": run.cfg.seed}, upstream=upstream, seed=run.cfg.seed, backbone=run.backbone_identity(),
                         arm=arm, init=run.cfg.lora.init, tasks=run.tasks, modules=modules)
    print(f"diagnostics {arm} (seed {run.cfg.seed}): " + ", ".join(f"{k} {v:.3g}" for k, v in summary.items()) + f" -> {out}")


@app.command("summary")
@guarded
def summarise(config: Path = CONFIG, seed: list[int] = SEEDS, workdir: Path = WORKDIR) -> None:
    """Pool every arm's diagnostics over seeds into <workdir>/diagnostics_summary/: summary.json (DVC metrics:
    {arm: {scalar: median over seeds}}), summary.md, heatmaps.png and per_layer.png (the first seed, arms side by side)."""
    base = open_run(config, run_overrides(workdir))
    seeds = list(seed or base.cfg.seeds)
    missing = [s for s in seeds if s not in base.cfg.seeds]
    if missing:
        raise OsrmError(f"--seed {missing[0]} is not one of the config's seeds {base.cfg.seeds} — pick one of those")
    arms, runs = list(base.cfg.arms), {s: open_run(config, run_overrides(workdir, s)) for s in seeds}
    arts = {(a, s): Diagnostics.open(runs[s], a) for a in arms for s in seeds}
    pooled = pool({a: {s: arts[a, s].summary() for s in seeds} for a in arms})
    figures = {a: diagnose.Interference.from_json(arts[a, seeds[0]].results()["interference"]) for a in arms}
    out = base.layout.diagnostics_summary()
    with atomic_dir(out) as tmp:
        (tmp / "summary.json").write_text(json.dumps(pooled, indent=1) + "\n")  # arms in config order
        (tmp / "summary.md").write_text(summary_md(pooled, {a: base.cfg.arms[a].init for a in arms}, seeds))
        diagnose_plots.heatmaps(figures, tmp / "heatmaps.png")
        diagnose_plots.per_layer(figures, tmp / "per_layer.png")
        upstream = {f"{a}/seed{s}": x.content_hash for (a, s), x in arts.items()}
        DiagnosticsSummary.seal(tmp, {"arms": arms, "seeds": seeds}, upstream=upstream, arms=arms, seeds=seeds)
    print(f"diagnostics summary: {out / 'summary.md'}")


@app.command("ablate")
@guarded(preload=("transformers.modeling_utils",))
def ablate(config: Path = CONFIG, arm: str = ARM, seed: int = SEED, workdir: Path = WORKDIR,
           task: list[str] = typer.Option(["all"], "--task", "-t", help="Tasks to ablate (repeatable); 'all' = every task."),
           lam: list[float] = typer.Option([0.4, 0.6, 0.8, 1.0], "--lambda", help="Scales λ (repeatable)."),
           split: str = typer.Option("validation", help="Split to score: validation (default) or test."),
           out: Path = typer.Option(None, "--json", help="Also write the rows as JSON here.")) -> None:
    """Scaling or interference? Score each TASK of ARM's adapters under its own update × λ, the task-arithmetic
    merge at λ, and its own full update + λ × the other tasks' (docs/diagnostics.md); prints a markdown table."""
    if split not in ("validation", "test"):
        raise OsrmError(f"--split '{split}': use validation or test")
    run = open_run(config, run_overrides(workdir, seed), arm=arm)
    tasks = expand_all(task, run.tasks, run.check_task)
    adapters = TaskAdapter.open_all(run, arm)
    deltas = {t: individual_delta(a.peft) for t, a in adapters.items()}
    heads, cache, rows = {t: a.peft.head() for t, a in adapters.items()}, {}, []
    for t in progress(tasks, f"ablate {arm}"):
        individual = score_task(run, t, deltas[t], heads[t], split, cache=cache)[0]["score"]
        others = others_sum(deltas, t)
        for x in lam:
            updates = ablation_updates(deltas[t], others, x)
            rows.append({"task": t, "lambda": x, "individual": individual,
                         **{v: score_task(run, t, updates[v], heads[t], split, cache=cache)[0]["score"] for v in VARIANTS}})
    if out is not None:
        write_json_atomic(out, {"arm": arm, "seed": run.cfg.seed, "split": split, "rows": rows})
    print(f"ablation {arm} (seed {run.cfg.seed}, {split}):\n" + ablation_table(rows))
