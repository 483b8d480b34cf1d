"""The report's tables (pure; no I/O) from the study's numbers (osrm_core.study.study): the headline (the
validation-chosen merge of each arm vs the reference), the paper-default and λ = 1 variants, the individual
adapters and the per-task scores."""

from __future__ import annotations


LABEL = {"lora": "LoRA", "osrm": "LoRA+OSRM"}  # display names of the default arms; others show their own name
#: the `base` model's name: the backbone without adapter, with the task head (classification) or zero-shot (generative)
BASE = "pretrained, no adapter (task head only / zero-shot)"


def normalised_score(scores: dict[str, float], individual: dict[str, float]) -> float:
    """The paper's normalised score: 100 x mean over tasks of merged / individual score, over the tasks
    whose individual score is positive (0.0 when none is)."""
    ratios = [scores[t] / individual[t] for t in scores if individual[t] > 0]
    return 100.0 * sum(ratios) / len(ratios) if ratios else 0.0


def label(arm: str) -> str:
    return LABEL.get(arm, arm)


def _pm(entry: dict, key: str) -> str:
    if key not in entry:
        return "–"
    sd = entry.get(f"{key}_sd")
    return f"{entry[key]:.1f} ± " + (f"{sd:.1f}" if sd is not None else "–")


def _delta(entry: dict, prefix: str = "") -> str:
    """'+1.2 [−0.4, 2.8]' (the seed-level interval, osrm_core.inference) or '–' for the reference arm."""
    diff = entry.get(f"{prefix}diff")
    if diff is None:
        return "–"
    return f"{diff:+.2f} [{entry[f'{prefix}ci_low']:.2f}, {entry[f'{prefix}ci_high']:.2f}]"


def _t(entry: dict) -> str:
    return f"[{entry['t_low']:.2f}, {entry['t_high']:.2f}]" if "t_low" in entry else "–"


def verdict_of(entry: dict, prefix: str = "") -> str:
    """The verdict of the seed-level interval ('–' for the reference arm). A primary comparison (entry primary = 1)
    shows its Holm-adjusted verdict and p, in bold when better / worse; every other row is marked exploratory and
    never bold (docs/statistics.md)."""
    if f"{prefix}ci_low" not in entry:
        return "–"
    if entry["n_seeds"] == 1:
        return "inconclusive (1 seed)"
    word = {1: "better", -1: "worse"}.get(entry[f"{prefix}verdict_code"], "inconclusive")
    if entry.get("primary") and not prefix:
        p = f" (p_Holm {entry['p_holm']:.3f})" if "p_holm" in entry else ""
        return (f"**{word}**" if word != "inconclusive" else word) + p + " · primary"
    return f"{word} · exploratory"


def format_params(per_seed: dict[str, dict], edges: dict | None = None) -> str:
    """'lambda=0.3' when every seed chose the same parameters, else 'seed 1: lambda=0.3; seed 2: ...'.
    edges (metrics.json's "edge": "seed<s>" -> param -> osrm_core.selection.EDGE_CODE) marks a value on the
    edge of its grid: 'lambda=2 (edge: max)' (docs/merging.md, "Edges of the grid")."""
    from osrm_core.selection import EDGE_TEXT

    def one(s: str, k: str, v) -> str:
        code = (edges or {}).get(f"seed{s}", {}).get(k)
        return (f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}") + (f" ({EDGE_TEXT[code]})" if code else "")

    texts = {s: ", ".join(one(s, k, v) for k, v in sorted(p.items())) or "–" for s, p in per_seed.items()}
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"seed {s}: {t}" for s, t in texts.items())


HEAD = ("| method | arm | chosen params | test avg (mean ± sd) | normalised | Δ avg vs {ref} [95% seed-level CI] | "
        "t-interval (seeds only) | Δ normalised [95% CI] | verdict |")


def headline_table(numbers: dict, arms: list[str], reference: str, methods: list[str], params: dict) -> str:
    """One row per method × arm: the validation-chosen merge. params: arm -> method -> seed -> chosen params."""
    lines = [HEAD.format(ref=label(reference)), "|" + "---|" * 9]
    for m in methods:
        for a in arms:
            e = numbers[a][m]
            lines.append(f"| {m} | {label(a)} | {format_params(params[a][m], e.get('edge'))} | {_pm(e, 'average')} | {_pm(e, 'normalised')} | "
                         f"{_delta(e)} | {_t(e)} | {_delta(e, 'norm_')} | {verdict_of(e)} |")
    return "\n".join(lines)


def variants_table(numbers: dict, arms: list[str], methods: list[str], defaults: dict) -> str:
    """The paper-default and λ = 1 rows. defaults: method -> merge.methods parameters."""
    lines = ["| method | variant | arm | test avg (mean ± sd) | normalised | Δ avg [95% seed-level CI] | t-interval | verdict |",
             "|" + "---|" * 8]
    for m in methods:
        for variant in ("default", "lambda1"):
            for a in arms:
                e = numbers[a][m].get(variant)
                if e is not None:
                    name = f"default ({format_params({'': defaults[m]})})" if variant == "default" else "λ = 1"
                    lines.append(f"| {m} | {name} | {label(a)} | {_pm(e, 'average')} | {_pm(e, 'normalised')} | "
                                 f"{_delta(e)} | {_t(e)} | {verdict_of(e)} |")
    return "\n".join(lines)


def individual_table(numbers: dict, arms: list[str]) -> str:
    """Individual adapters vs the reference; ‖A₀‖_F = numbers[arm]['a0_norm'] (the initial A's Frobenius norm,
    mean over seeds, tasks and modules: lora.a_norm, docs/study.md), '–' where adapters did not record it."""
    lines = ["| model | test avg (mean ± sd) | Δ avg [95% seed-level CI] | t-interval | verdict | ‖A₀‖_F |", "|---|---|---|---|---|---|",
             f"| {BASE} | {_pm(numbers['base'], 'average')} | – | – | – | – |"]
    for a in arms:
        e, norm = numbers[a]["individual"], numbers[a].get("a0_norm")
        lines.append(f"| {label(a)} · individual | {_pm(e, 'average')} | {_delta(e)} | {_t(e)} | {verdict_of(e)} | "
                     + ("–" if norm is None else f"{norm:.2f}") + " |")
    return "\n".join(lines)


def check_table(check: dict, reference: str, margin: float) -> str:
    """'Is every task learnt?': chance, the model without adapter (task head only, or zero-shot prompt), the reference
    arm's individual adapter."""
    lines = [f"| task | chance (best constant) | {BASE} | {label(reference)} · individual | gain | learnt (gain ≥ {margin:g}) |",
             "|---|---|---|---|---|---|"]
    for t, c in check.items():
        lines.append(f"| {t} | {c['chance']:.1f} | {c['floor']:.1f} | {c['individual']:.1f} | {c['gain']:+.1f} | "
                     f"{'yes' if c['learnt'] else '**no**'} |")
    bad = [t for t, c in check.items() if not c["learnt"]]
    if bad:
        lines.append(f"\n**Not learnt: {', '.join(bad)}** — these add noise to every merge average; give them more "
                     "training (finetune, data.max_train) or leave them out of `tasks` (docs/evaluation.md).")
    return "\n".join(lines)


def task_rows(numbers: dict, arms: list[str], methods: list[str]) -> list[dict]:
    """Rows of the per-task table (means over seeds): pretrained, each arm's individual adapters and chosen merges."""
    rows = [{"name": BASE, **numbers["base"]}]
    for a in arms:
        rows.append({"name": f"{label(a)} · individual", **numbers[a]["individual"], "normalised": 100.0})
        rows += [{"name": f"{label(a)} · {m}", **numbers[a][m]} for m in methods]
    return rows


def markdown_table(rows: list[dict], tasks: list[str]) -> str:
    """Columns: tasks (mean over seeds), avg, normalised."""
    lines = ["| model | " + " | ".join(tasks) + " | avg | normalised |", "|" + "---|" * (len(tasks) + 3)]
    for r in rows:
        norm = f"{r['normalised']:.1f}" if "normalised" in r else "–"
        cells = " | ".join(f"{r['tasks'][t]:.1f}" for t in tasks)
        lines.append(f"| {r['name']} | {cells} | {r['average']:.1f} | {norm} |")
    return "\n".join(lines)


SUMMARY_ROWS = (("task arithmetic, λ chosen on validation", "task_arithmetic", None),
                ("TIES, λ × density chosen on validation", "ties", None),
                ("task arithmetic at λ = 1", "task_arithmetic", "lambda1"),
                ("individual adapters", "individual", None))


def summary_table(numbers: dict, arms: list[str], reference: str, rows=SUMMARY_ROWS) -> str:
    """README's compact study table from the report's numbers (metrics.json): per (title, method, variant) in rows a
    line per arm (in `arms` order) with ‖A₀‖_F, the test average, Δ avg and Δ normalised vs the reference with
    their seed-level intervals and the verdict (bold only for a primary comparison: verdict_of)."""
    lines = [f"| comparison | arm | ‖A₀‖_F | test avg (mean ± sd) | Δ avg vs {label(reference)} [95% CI] | "
             "Δ normalised [95% CI] | verdict |", "|" + "---|" * 7]
    for title, method, variant in rows:
        for i, a in enumerate(arms):
            e = numbers[a][method] if variant is None else numbers[a][method][variant]
            norm = numbers[a].get("a0_norm")
            lines.append(f"| {title if i == 0 else ''} | {label(a)} | {'–' if norm is None else f'{norm:.2f}'} | "
                         f"{_pm(e, 'average')} | {_delta(e)} | {_delta(e, 'norm_')} | {verdict_of(e)} |")
    return "\n".join(lines)
