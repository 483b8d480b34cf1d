"""Print the data-card tables of a suite (split sizes, label balance, text lengths) as Markdown.

Usage: ``python -m osrm_pipeline.suites.card [--suite default] [--seed 42]``. The numbers in
docs/data_card.md were produced by this command.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

import datasets

from osrm_core.tasks.spec import TaskSpec
from osrm_pipeline.suites import list_tasks, load_task, task_fingerprint


def balance(spec: TaskSpec, ds: datasets.Dataset) -> str:
    """Class shares (``name n (p%)``) or, for regression, mean ± sd and range."""
    labels = ds["label"][:]
    if not labels:
        return "empty"
    if spec.is_regression:
        return (
            f"mean {statistics.fmean(labels):.2f} ± {statistics.pstdev(labels):.2f}, "
            f"range [{min(labels):.2f}, {max(labels):.2f}]"
        )
    counts = Counter(labels)
    return ", ".join(
        f"{spec.label_names[k]} {counts[k]} ({100 * counts[k] / len(labels):.0f}%)" for k in range(spec.num_labels)
    )


def mean_words(spec: TaskSpec, ds: datasets.Dataset) -> str:
    """Mean words per text field, e.g. ``18.4`` or ``31.2 / 17.9`` for pairs."""
    means = [statistics.fmean(len(t.split()) for t in ds[f][:]) for f in spec.text_fields]
    return " / ".join(f"{m:.1f}" for m in means)


def suite_table(suite: str, seed: int) -> str:
    """One Markdown table: a row per task and split."""
    lines = [
        "| task | metric | split | rows | words/text | label balance |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for name in list_tasks(suite):
        spec, dd = load_task(suite, name, seed=seed)
        for split, ds in dd.items():
            lines.append(
                f"| {name} | {spec.metric} | {split} | {len(ds)} | {mean_words(spec, ds)} | {balance(spec, ds)} |"
            )
    return "\n".join(lines)


def fingerprint_table(suite: str, seed: int) -> str:
    """Markdown list of each task's data fingerprint (first 16 hex digits)."""
    return "\n".join(f"- `{n}`: `{task_fingerprint(suite, n, seed)[:16]}`" for n in list_tasks(suite))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="default")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    print(suite_table(args.suite, args.seed))
    print()
    print(fingerprint_table(args.suite, args.seed))


if __name__ == "__main__":
    main()
