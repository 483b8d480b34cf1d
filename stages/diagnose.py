"""`osrm diagnose`: why a merge works or not, from token Grams and adapter factors alone (docs/diagnostics.md).

`run` diagnoses one arm of one seed (interference E, own/other energy of A at init and after training, A
drift); `summary` pools every arm over seeds into one table and two figures.
"""

from __future__ import annotations

import json
import statistics
from contextlib import contextmanager
from pathlib import Path

import torch
import typer

from osrm_core import diagnose, diagnose_plots
from osrm_core.errors import OsrmError
from osrm_core.subspace import random_orthonormal
from stages.io.artifacts import Diagnostics, DiagnosticsSummary, Features, Subspace, TaskAdapter
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded
from stages.io.options import ARM, CONFIG, SEED, WORKDIR, run_overrides
from stages.io.run import Run, open_run

app = typer.Typer(help="Interference diagnostics of trained adapters (no forward pass; docs/diagnostics.md).", no_args_is_help=True)
HEATMAP = "heatmap.png"
SEEDS = typer.Option(None, "--seed", help="Seeds to pool (repeatable); default: every seed of the config.")
Nested = dict[str, dict[str, torch.Tensor]]


@contextmanager
def one_thread():
    """torch on one thread: the many small d x d products of energy_shares are ~25x slower with the default
    thread count on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def read_grams(features: dict[str, Features], modules: list[str]) -> tuple[Nested, dict[str, dict[str, int]]]:
    """({task: {module: G (d_in x d_in) float64}}, {task: {module: token count}}); modules sharing an input
    (q/v of one block) share one tensor."""
    grams, counts = {}, {}
    for t, f in features.items():
        cache, seen = f.cache, {}
        for m in modules:
            key = cache.aliases.get(m, m)
            if key not in seen:
                seen[key] = (cache.gram(m), cache.count(m))
        grams[t] = {m: seen[cache.aliases.get(m, m)][0] for m in modules}
        counts[t] = {m: seen[cache.aliases.get(m, m)][1] for m in modules}
    return grams, counts


def initial_a(run: Run, arm: str, trained: Nested) -> Nested | None:
    """{task: {module: A_0 (r x d_in) float32}} as finetune started it: the subspace file (init osrm), the
    seeded orthonormal draw (module i in name order from seed + i, osrm_core.lora.orthonormal_init), or None
    (gaussian: PEFT's draw is not saved)."""
    init = run.cfg.lora.init
    if init == "osrm":
        return {t: {m: a for m, a in Subspace.open(run, arm, t).tensors().items() if m in mods} for t, mods in trained.items()}
    if init == "orthonormal":
        return {t: {m: random_orthonormal(*a.shape, run.cfg.seed + i).float() for i, (m, a) in enumerate(sorted(mods.items()))}
                for t, mods in trained.items()}
    return None


def diagnose_arm(run: Run, arm: str) -> tuple[dict, list[str], dict[str, str]]:
    """(diagnostics.json content, modules, upstream hashes) of one arm of one seed."""
    features = Features.open_all(run, run.tasks)
    adapters = TaskAdapter.open_all(run, arm)
    modules = next(iter(adapters.values())).peft.modules
    factors = {t: {m: (*a.peft.factors(m), a.peft.scale) for m in modules} for t, a in adapters.items()}
    trained = {t: {m: f[0] for m, f in fs.items()} for t, fs in factors.items()}
    grams, counts = read_grams(features, modules)
    init = initial_a(run, arm, trained)
    with one_thread():
        result = {"arm": arm, "init": run.cfg.lora.init, "seed": run.cfg.seed,
                  "interference": diagnose.interference(grams, factors).as_dict(),
                  "energy": {"trained": diagnose.energy_shares(grams, counts, trained).as_dict(),
                             "init": None if init is None else diagnose.energy_shares(grams, counts, init).as_dict()},
                  "drift": None if init is None else diagnose.drift(trained, init).as_dict()}
    upstream = {f"features/{t}": f.content_hash for t, f in features.items()}
    upstream |= {f"adapters/{t}": a.content_hash for t, a in adapters.items()}
    return result, modules, upstream


def scalars(result: dict) -> dict[str, float]:
    """summary.json of one arm and seed: median/mean/max off-diagonal E, mean own/other energy ratios (after
    training, and at init when A_0 is known) and mean A drift (when A_0 is known)."""
    e, energy = result["interference"], result["energy"]
    out = {"median_offdiag": e["median_offdiag"], "mean_offdiag": e["mean_offdiag"], "max_offdiag": e["max_offdiag"],
           "own_energy": energy["trained"]["own_mean"], "other_energy": energy["trained"]["other_mean"]}
    if energy["init"] is not None:
        out |= {"own_energy_init": energy["init"]["own_mean"], "other_energy_init": energy["init"]["other_mean"]}
    if result["drift"] is not None:
        out["drift"] = result["drift"]["mean"]
    return out


@app.command("run")
@guarded
def run_arm(config: Path = CONFIG, arm: str = ARM, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Diagnose ARM's adapters of one seed from the cached token Grams (no forward pass).

    Writes <workdir>/diagnostics/seed<seed>/<arm>/: diagnostics.json (E per module, energy shares at init and
    after training, A drift), summary.json (scalars: DVC metrics), heatmap.png and a manifest.
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


def pool(per_seed: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{arm: {scalar: median over seeds}} of {arm: {seed: scalars}}; a scalar missing for some seed is dropped."""
    out = {}
    for arm, seeds in per_seed.items():
        keys = set.intersection(*(set(s) for s in seeds.values()))
        out[arm] = {k: float(statistics.median(s[k] for s in seeds.values())) for k in sorted(keys)}
    return out


COLUMNS = {"median_offdiag": "median E", "mean_offdiag": "mean E", "own_energy": "own", "other_energy": "other",
           "own_energy_init": "own@init", "other_energy_init": "other@init", "drift": "A drift"}


def summary_md(pooled: dict[str, dict[str, float]], inits: dict[str, str], seeds: list[int]) -> str:
    """A markdown table of the pooled scalars and what they mean."""
    lines = ["| arm | init | " + " | ".join(COLUMNS.values()) + " |", "|---|---|" + "---:|" * len(COLUMNS)]
    for arm, vals in pooled.items():
        lines.append(f"| {arm} | {inits[arm]} | " + " | ".join(f"{vals[k]:.3f}" if k in vals else "–" for k in COLUMNS) + " |")
    over = f"median over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
    return ("## Interference diagnostics\n\n" + "\n".join(lines) + "\n\n"
            f"Values: {over}; figures: seed {seeds[0]}. E_ij = task j's update's output shift on task i's tokens relative "
            "to task i's own (diagonal 1); median/mean over i != j, lower is less interference, ~1 is as loud as the own update.\n"
            "own/other: energy of the task's own / the other tasks' token second moment captured by A's row space, relative "
            "to a random subspace of the same rank (1 = random; a selective A has own > 1 > other); @init is A as training "
            "started (unknown for gaussian).\n"
            "A drift: ||A_end - A_0||_F / ||A_0||_F (0 = A frozen). From base-model Grams, first-order beyond the first layer; "
            "definitions in docs/diagnostics.md.\n")


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
