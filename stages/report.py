"""`osrm report`: pool every seed's selections and evaluations into the study's statistics (docs/study.md).

Predictions are rebuilt from the stored test logits (selection/: the merges; eval/: base and individual
adapters), labels from the test split, so every number — mean ± sd over seeds, the paired bootstrap over
seeds × rows, the t-interval over seeds — is computed here from the same rows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import typer

from osrm_core import regime
from osrm_core.errors import OsrmError
from osrm_core.inference import METHOD
from osrm_core.lora import INITS
from osrm_core.report import check_table, headline_table, individual_table, markdown_table, task_rows, variants_table
from osrm_core.selection import edge_numbers
from osrm_core.study import LEARNT_MARGIN, Rows, study, task_check
from osrm_core.sweep_plots import lambda_rows, plot_lambda, plot_normalised, plot_tasks, tasks_rows
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline.layout import Layout, ModelRef
from osrm_pipeline.pipeline_config import PipelineConfig
from osrm_pipeline.run import Run, open_run
from stages.io.artifacts import DiagnosticsSummary, Evaluation, Report, Selection, Subspace, TaskAdapter
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded
from stages.io.options import CONFIG, WORKDIR, run_overrides

N_BOOT = typer.Option(1000, "--n-boot", min=1, help="Bootstrap replicates of every paired interval (seeded: reproducible).")
NOTE = ("Every interval and verdict rests on the seed-level interval (`" + METHOD + "`, docs/statistics.md): the "
        "per-seed differences' variance over k seeds plus the test rows' shared variance (the covariance across seeds "
        "of a paired bootstrap over rows), Student-t quantiles with k − 1 df; its false-verdict rate under the null is "
        "at most 5% ± its Monte-Carlo error in simulation (docs/statistics.md, Calibration). The "
        "t-interval over seeds alone is shown beside it. **Primary** comparisons (study.primary: the validation-chosen "
        "merges of {primary}, every arm vs the reference) are Holm-adjusted and the only verdicts in bold; every other "
        "row is exploratory. A difference whose interval contains 0 is not a finding. With one seed no verdict is "
        "given. metrics.json: verdict_code 1 = better, −1 = worse, 0 = inconclusive; primary 1/0; p, p_holm.")


def _preds(logits, spec) -> np.ndarray:
    """Test predictions (n,) from stored per-row scores (the task kind's: argmax, a value or a row score)."""
    return kind_of(spec).predictions(spec, logits.numpy())


def _eval_preds(ev: Evaluation, specs: dict) -> dict[str, np.ndarray]:
    """task -> test predictions (n,) from an evaluation's logits.safetensors (dataset order)."""
    from safetensors.torch import load_file

    return {t: _preds(x, specs[t]) for t, x in load_file(ev.folder / "logits.safetensors").items()}


def load(run: Run) -> tuple[dict, dict, dict, dict, dict]:
    """(models: arm -> key -> seed -> task -> preds, base preds, selections: arm -> [results per seed],
    task rows, upstream hashes) for every seed of the config."""
    specs = {t: run.load_task(t)[0] for t in run.tasks}
    models, base, selections, upstream = {a: {} for a in run.cfg.arms}, {}, {a: [] for a in run.cfg.arms}, {}
    for seed in run.cfg.seeds:
        srun, s = dataclasses.replace(run, layout=Layout(run.layout.workdir, seed)), str(seed)
        ev = Evaluation.open(srun, ModelRef())
        base[s] = _eval_preds(ev, specs)
        upstream[f"seed{s}/base"] = ev.content_hash
        for arm in run.cfg.arms:
            ind = Evaluation.open(srun, ModelRef(arm, "individual"))
            models[arm].setdefault("individual", {})[s] = _eval_preds(ind, specs)
            sel = Selection.open(srun, arm)
            selections[arm].append(sel.results())
            for variant in sel.manifest.variants:
                for key, x in sel.logits(variant).items():
                    method, task = key.split("::")
                    models[arm].setdefault(f"{method}@{variant}", {}).setdefault(s, {})[task] = _preds(x, specs[task])
            upstream |= {f"seed{s}/{arm}/individual": ind.content_hash, f"seed{s}/{arm}/selection": sel.content_hash}
    return models, base, selections, _rows(run), upstream


def a0_norms(run: Run) -> dict[str, float | None]:
    """arm -> ||A_0||_F of its adapters (finetune's manifest a0_norm: mean over modules), mean over seeds and
    tasks; None where no adapter recorded it (adapters from before lora.a_norm, or absent)."""
    out = {}
    for arm in run.cfg.arms:
        vals = []
        for seed in run.cfg.seeds:
            layout = Layout(run.layout.workdir, seed)
            for t in run.tasks:
                folder = layout.adapter(arm, t)
                if folder.is_dir():
                    v = TaskAdapter.read(folder, TaskAdapter.hint(arm, t, seed=seed), seed).manifest.a0_norm
                    vals += [] if v is None else [v]
        out[arm] = sum(vals) / len(vals) if vals else None
    return out


def _rows(run: Run) -> dict[str, Rows]:
    out = {}
    for t in run.tasks:
        spec, data = run.load_task(t)
        out[t] = Rows(spec.metric, kind_of(spec).labels(spec, data["test"]))
    return out


def diagnostics(folder: Path) -> tuple[str, dict]:
    """`osrm diagnose summary`'s summary.md and its PNGs (linked), and its numbers per arm; ('', {}) without it."""
    if not (folder / "summary.json").is_file():
        return "", {}
    DiagnosticsSummary.read(folder, "osrm diagnose summary")  # verified, not half-written
    summary = json.loads((folder / "summary.json").read_text())
    text = (folder / "summary.md").read_text() if (folder / "summary.md").is_file() else ""
    images = "\n".join(f"![{p.stem}](../{folder.name}/{p.name})" for p in sorted(folder.glob("*.png")))
    numbers = {a: {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
               for a, d in summary.items() if isinstance(d, dict)}
    return f"\n## Diagnostics (interference of the adapters)\n\n{text}\n\n{images}\n", numbers


def _chosen_params(selections: dict, seeds: list[int]) -> dict:
    """arm -> method -> seed -> chosen params."""
    return {a: {m: {str(s): r["methods"][m]["chosen"] for s, r in zip(seeds, per)} for m in per[0]["methods"]}
            for a, per in selections.items()}


def _task_methods(cfg: PipelineConfig) -> list[str]:
    """The merged methods with a score-vs-number-of-tasks curve (merge.sweep_tasks): the figure and its link."""
    return [m for m in cfg.merge.sweep_tasks if m in cfg.merge.methods]


def markdown(run: Run, numbers: dict, params: dict, diag: str) -> str:
    arms, methods, cfg = list(run.cfg.arms), list(run.cfg.merge.methods), run.cfg
    head = (f"# OSRM study report\n\nBackbone `{run.spec.name}`, suite `{run.suite.suite}` ({len(run.tasks)} tasks), "
            f"test split, seeds {cfg.seeds}, reference arm `{cfg.reference}`; arms: "
            + ", ".join(f"`{a}` (init {cfg.arms[a].init}{', ' + str(cfg.arms[a].lora | cfg.arms[a].osrm) if cfg.arms[a].lora or cfg.arms[a].osrm else ''})" for a in arms)
            + f". Merge parameters chosen on validation (`osrm select`).\n\n"
            + NOTE.format(primary=", ".join(m for m in cfg.study.primary if m in methods) or "no method") + "\n\n")
    return (head + "## Merges, validation-chosen parameters (headline)\n\n" + headline_table(numbers, arms, cfg.reference, methods, params)
            + "\n\n## Paper-default and λ = 1 parameters\n\n" + variants_table(numbers, arms, methods, cfg.merge.methods)
            + "\n\n## Individual adapters\n\n" + individual_table(numbers, arms)
            + "\n\n## Is every task learnt?\n\n" + check_table(numbers["task_check"], cfg.reference, LEARNT_MARGIN)
            + "\n\n## Per task (test score, mean over seeds; merges with the chosen parameters)\n\n"
            + markdown_table(task_rows(numbers, arms, methods), run.tasks)
            + "\n\n![normalised score](merge.png)\n\n![validation average vs λ](lambda.png)\n"
            + ("\n![number of tasks](tasks.png)\n" if _task_methods(cfg) else "") + diag)


@guarded
def main(config: Path = CONFIG, workdir: Path = WORKDIR, n_boot: int = N_BOOT) -> None:
    """Pool every seed: report/metrics.json (nested numbers: DVC metrics), report.md, curves/ (DVC plots), PNGs."""
    run = open_run(config, run_overrides(workdir))
    if run.cfg.evaluate.split != "test":
        raise OsrmError(f"{config}: evaluate.split is '{run.cfg.evaluate.split}': the report pairs eval/ with the test "
                        "scores of `osrm select` — set evaluate.split: test and rerun `osrm evaluate`")
    models, base, selections, rows, upstream = load(run)
    primary = tuple(m for m in run.cfg.study.primary if m in run.cfg.merge.methods)
    numbers = study(models, base, rows, run.cfg.reference, n_boot=n_boot, primary=primary, level=run.cfg.study.level)
    numbers["task_check"] = task_check(numbers, rows, run.cfg.reference)
    params = _chosen_params(selections, run.cfg.seeds)
    for arm, per in params.items():
        for m, by_seed in per.items():
            numbers[arm][m]["params"] = {f"seed{s}": {k: v for k, v in p.items() if isinstance(v, (int, float))}
                                         for s, p in by_seed.items()}
            numbers[arm][m]["edge"] = edge_numbers({f"seed{s}": r["methods"][m].get("edge", {})  # docs/merging.md
                                                    for s, r in zip(run.cfg.seeds, selections[arm])})
    for arm, norm in a0_norms(run).items():
        if norm is not None:  # metrics.json leaves are numbers (DVC metrics)
            numbers[arm]["a0_norm"] = norm  # the individual table's ‖A₀‖_F (lora.a_norm, docs/study.md)
    diag, diag_numbers = diagnostics(run.layout.diagnostics_summary())
    for arm, d in diag_numbers.items():
        numbers.setdefault(arm, {})["diagnostics"] = d
    regime_md, numbers["regime"] = regime_section(run)  # docs/regimes.md
    _write(run, numbers, selections, markdown(run, numbers, params, diag + regime_md), upstream)


def _write(run: Run, numbers: dict, selections: dict, text: str, upstream: dict) -> None:
    out, methods = run.layout.report(), list(run.cfg.merge.methods)
    lam = {m: lambda_rows(selections, m) for m in methods}
    with atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
        (tmp / "report.md").write_text(text)
        (tmp / "curves").mkdir()
        for m, rows in lam.items():
            if rows:
                (tmp / "curves" / f"{m}.json").write_text(json.dumps(rows, indent=1) + "\n")
        plot_lambda(lam, tmp / "lambda.png")
        plot_tasks({m: tasks_rows(selections, m) for m in _task_methods(run.cfg)}, tmp / "tasks.png")
        plot_normalised(numbers, list(run.cfg.arms), methods, tmp / "merge.png")
        Report.seal(tmp, {"seeds": run.cfg.seeds, "arms": list(run.cfg.arms), "reference": run.cfg.reference,
                          "methods": methods}, upstream=upstream)
    print(f"report: {out / 'report.md'}")
    print(text.split("\n\n## Paper-default")[0])


# --- the "Regime" section: per arm with subspaces (INITS[init].needs_subspace), could A_t be exactly orthogonal to
# the other tasks' features? Read from the subspaces' report.json of every seed (osrm_core/regime.py, docs/regimes.md).

REGIME_KEYS = ("layers", "exact_layers", "median_null_dim", "median_captured_energy_vs_random", "rows_min", "rows_max",
               "d_in_min", "d_in_max", "lora_rank")
REGIME_TOKENS = ("median_token_energy_vs_random",)  # absent for features without held-out Grams


def arm_regime(run, arm: str) -> dict[int, dict]:
    """{seed: regime.summarise over every task's layers} of one arm; seeds without (regime-reporting) subspaces are left out."""
    out = {}
    for seed in run.cfg.seeds:
        layout = Layout(run.layout.workdir, seed)
        layers, rank = [], None
        for task in run.tasks:
            folder = Subspace.path(layout, arm, task)
            if not (folder / "report.json").is_file():
                break
            art = Subspace.read(folder, Subspace.hint(arm, task, seed=seed), seed)  # verified, not half-written
            rows = json.loads((folder / "report.json").read_text())
            if not all("regime" in r for r in rows.values()):
                break  # built before the regime was reported
            layers += [r["regime"] for r in rows.values()]
            rank = art.manifest.rank
        else:
            if layers:
                out[seed] = regime.summarise(layers, rank)
    return out


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def regime_section(run) -> tuple[str, dict]:
    """(markdown section, {arm: numbers}) for every arm with subspaces (osrm, refit); ('', {}) when none has any.

    Numbers are those of the first seed with subspaces (metrics.json: numbers only); the line says when other seeds
    differ in their count of exact layers or median null dim."""
    lines, numbers = [], {}
    for arm, spec in run.cfg.arms.items():
        if not INITS[spec.init].needs_subspace:
            continue
        per_seed = arm_regime(run, arm)
        if not per_seed:
            lines.append(f"- `{arm}`: no subspace report with a regime (rebuild with `osrm build-subspace`)")
            continue
        seed, first = next(iter(per_seed.items()))
        numbers[arm] = {k: first[k] for k in REGIME_KEYS + REGIME_TOKENS if k in first}
        differ = sorted(s for s, x in per_seed.items() if (x["exact_layers"], x["median_null_dim"]) !=
                        (first["exact_layers"], first["median_null_dim"]))
        note = f" (seed {seed}; seeds {differ} differ)" if differ else f" (seed {seed}" + (
            f", same at seeds {sorted(per_seed)[1:]})" if len(per_seed) > 1 else ")")
        lines.append(f"- `{arm}`: exact null space (dim ≥ r={first['lora_rank']}) at {first['exact_layers']}/{first['layers']} "
                     f"layers × tasks, median null dim {first['median_null_dim']:g}, median captured other-task energy "
                     f"{first['median_captured_energy_vs_random']:.3g}× random, other tasks give "
                     f"{_span(first['rows_min'], first['rows_max'])} rows for d_in {_span(first['d_in_min'], first['d_in_max'])}"
                     + (f", their held-out tokens {first[REGIME_TOKENS[0]]:.2f}× random" if REGIME_TOKENS[0] in first else "") + note)
    if not lines:
        return "", {}
    text = ("\n## Regime (can A be orthogonal to the other tasks' features?)\n\n"
            f"Null space of the other tasks' second moment per layer; numerical rank: {regime.TOLERANCE}. "
            "Captured energy 1 = a random subspace, 0 = exactly orthogonal (docs/regimes.md).\n\n" + "\n".join(lines) + "\n")
    return text, numbers
