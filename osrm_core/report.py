"""Rows and the markdown table of the report (pure; no I/O)."""

from __future__ import annotations

LABEL = {"lora": "LoRA", "osrm": "LoRA+OSRM"}  # display names of the default arms; others show their own name


def normalised_score(scores: dict[str, float], individual: dict[str, float]) -> float:
    """The paper's normalised score: 100 x mean over tasks of merged / individual score, over the tasks
    whose individual score is positive (0.0 when none is)."""
    ratios = [scores[t] / individual[t] for t in scores if individual[t] > 0]
    return 100.0 * sum(ratios) / len(ratios) if ratios else 0.0


def build_rows(evals: dict[str, dict], tasks: list[str]) -> list[dict]:
    """One row per evaluated model: per-task scores, average, and normalised average (merged / individual).

    The normalised average is the mean over tasks of score_merged(t) / score_individual(t) * 100, with
    the individual adapters of the same init as reference (the paper's normalised score).
    """
    rows = []
    for model, ev in evals.items():
        init, _, what = model.partition("/")
        scores = {t: ev["tasks"][t]["score"] for t in tasks}
        row = {"model": model, "init": init if what else "", "method": what or "base",
               "kind": "base" if not what else ("individual" if what == "individual" else "merge"),
               "scores": scores, "average": sum(scores.values()) / len(scores)}
        ref = evals.get(f"{init}/individual") if what else None
        if ref and row["kind"] == "merge":
            row["normalised"] = normalised_score(scores, {t: ref["tasks"][t]["score"] for t in tasks})
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], tasks: list[str]) -> str:
    """Rows: pretrained, then LoRA and LoRA+OSRM x {individual, each merge}; columns: tasks, avg, normalised."""
    head = "| model | " + " | ".join(tasks) + " | avg | normalised |"
    sep = "|" + "---|" * (len(tasks) + 3)
    lines = [head, sep]
    order = sorted(rows, key=lambda r: (r["kind"] != "base", r["method"] != "individual", r["method"], r["init"] != "lora"))
    for r in order:
        name = "pretrained (task head only)" if r["kind"] == "base" else f"{LABEL.get(r['init'], r['init'])} · {r['method']}"
        norm = f"{r['normalised']:.1f}" if "normalised" in r else ("100.0" if r["kind"] == "individual" else "–")
        cells = " | ".join(f"{r['scores'][t]:.1f}" for t in tasks)
        lines.append(f"| {name} | {cells} | {r['average']:.1f} | {norm} |")
    return "\n".join(lines)
