"""Where the time of a sequential `dvc repro` went, from the artifact manifests' `created` stamps.

`dvc repro` runs one stage after another, so the gap between consecutive manifests is the time of
the stage that wrote the later one (its process start-up, DVC's hashing and lock update included).
Stages that write several artifacts (merge, evaluate of all merges, build-subspace --task all) show
up as one long gap then near-zero gaps; the per-family sums are what to read.

    python benchmarks/pipeline_timing.py [runs/default] [--start 2026-11-22T09:35:06+00:00]

--start: when `dvc repro` began (scripts/run.sh passes it; only artifacts written since count).
Without it the first stage's own time is not counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

FAMILY = {"diagnose-summary": "diagnose"}  # stage name -> family shown (default: the stage name)


def stamps(root: Path) -> list[tuple[dt.datetime, str, str]]:
    rows = []
    for f in root.rglob("manifest.json"):
        m = json.loads(f.read_text())
        rows.append((dt.datetime.fromisoformat(m["created"]), m["stage"], str(f.parent.relative_to(root))))
    return sorted(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="runs/default")
    ap.add_argument("--start", help="ISO time `dvc repro` started (e.g. from `date -Iseconds`)")
    args = ap.parse_args()
    rows = stamps(Path(args.root))
    start = dt.datetime.fromisoformat(args.start) if args.start else None
    if start:
        rows = [r for r in rows if r[0] >= start]
    if not rows:
        print(f"{args.root}: no stage wrote an artifact{' since ' + args.start if start else ''} (nothing to time)")
        return
    prev = start or rows[0][0]
    per, count = defaultdict(float), defaultdict(int)
    for when, stage, _ in rows:
        fam = FAMILY.get(stage, stage)
        per[fam] += max((when - prev).total_seconds(), 0.0)
        count[fam] += 1
        prev = when
    total = sum(per.values())
    print("| stage family | artifacts | seconds | share |\n|---|---|---|---|")
    for fam, sec in per.items():
        print(f"| {fam} | {count[fam]} | {sec:.0f} | {100 * sec / total:.0f}% |")
    print(f"| **total** | {sum(count.values())} | **{total:.0f}** ({total / 60:.1f} min) | |")


if __name__ == "__main__":
    main()
