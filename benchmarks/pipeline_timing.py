"""Where the time of a sequential `dvc repro` went, from the artifact manifests' stamps.

`dvc repro` runs one stage after another, so the gap between consecutive manifests is the time of
the stage that wrote the later one (its process start-up, DVC's hashing and lock update included).
Stages that write several artifacts (merge, finetune/extract-features --task all, build-subspace) show
up as one long gap then short ones; the per-family sums are what to read.

Each manifest's `timing` (stages/io/guard.py) says which process wrote it, when that process started and
when its command's work began (after the imports it needs). Per process, main_start - process_start is
its start-up; process_start - the previous artifact is the time between stages (DVC hashing outputs and
updating dvc.lock, the previous process exiting). Artifacts of one process (same pid and start) count once.
Manifests without `timing` (written before it existed) are reported as untimed: their start-up is unknown.

    python benchmarks/pipeline_timing.py [runs/default] [--start 2026-11-22T09:35:06+00:00]

--start: when `dvc repro` began (scripts/run.sh passes it; only artifacts written since count).
Without it the clock starts when the first process started (or at the first artifact, if unstamped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

FAMILY = {"diagnose-summary": "diagnose"}  # stage name -> family shown (default: the stage name)
GOAL = 10.0  # % of the wall time that process start-up may take


@dataclass(frozen=True)
class Artifact:
    when: float  # epoch seconds the manifest was written
    family: str
    process: tuple | None  # (pid, process_start): one per process; None without timing stamps
    start: float | None  # process_start
    main: float | None  # main_start


def artifacts(root: Path) -> list[Artifact]:
    """Every manifest under root, oldest first."""
    rows = []
    for f in root.rglob("manifest.json"):
        m = json.loads(f.read_text())
        t = m.get("timing")
        when = t["written"] if t else dt.datetime.fromisoformat(m["created"]).timestamp()
        rows.append(Artifact(when, FAMILY.get(m["stage"], m["stage"]), (t["pid"], t["process_start"]) if t else None,
                             t["process_start"] if t else None, t["main_start"] if t else None))
    return sorted(rows, key=lambda a: a.when)


def family_seconds(rows: list[Artifact], origin: float) -> tuple[dict, dict]:
    """{family: seconds}, {family: artifacts}: each gap charged to the family of the later artifact."""
    per, count, prev = defaultdict(float), defaultdict(int), origin
    for a in rows:
        per[a.family] += max(a.when - prev, 0.0)
        count[a.family] += 1
        prev = a.when
    return per, count


def process_seconds(rows: list[Artifact], origin: float) -> dict[str, dict]:
    """Per family (of a process's first artifact): processes, start-up seconds, seconds between stages,
    processes whose start-up is unknown (a stamp missing) and artifacts without timing."""
    fams = defaultdict(lambda: {"processes": 0, "startup": 0.0, "between": 0.0, "unknown": 0, "untimed": 0})
    seen, prev = set(), origin
    for a in rows:
        f = fams[a.family]
        if a.process is None:
            f["untimed"] += 1
        elif a.process not in seen:
            seen.add(a.process)
            f["processes"] += 1
            if a.start is not None:
                f["between"] += max(a.start - prev, 0.0)
            if a.start is None or a.main is None:
                f["unknown"] += 1
            else:
                f["startup"] += a.main - a.start
        prev = a.when
    return fams


def origin_of(rows: list[Artifact], start: str | None) -> float:
    if start:
        return dt.datetime.fromisoformat(start).timestamp()
    return min([a.start for a in rows if a.start is not None] + [rows[0].when])


def report(rows: list[Artifact], origin: float) -> str:
    per, count = family_seconds(rows, origin)
    total = sum(per.values())
    out = ["| stage family | artifacts | seconds | share |", "|---|---|---|---|"]
    out += [f"| {fam} | {count[fam]} | {sec:.0f} | {100 * sec / max(total, 1e-9):.0f}% |" for fam, sec in per.items()]
    out += [f"| **total** | {sum(count.values())} | **{total:.0f}** ({total / 60:.1f} min) | |", ""]
    fams = process_seconds(rows, origin)
    out += ["| stage family | processes | start-up s | between stages s | start-up unknown | untimed artifacts |",
            "|---|---|---|---|---|---|"]
    out += [f"| {fam} | {f['processes']} | {f['startup']:.1f} | {f['between']:.1f} | {f['unknown']} | {f['untimed']} |"
            for fam, f in fams.items()]
    startup, n = sum(f["startup"] for f in fams.values()), sum(f["processes"] - f["unknown"] for f in fams.values())
    between = sum(f["between"] for f in fams.values())
    out.append("")
    out.append(f"start-up: {startup:.0f} s = {100 * startup / max(total, 1e-9):.1f}% of the wall time (goal ≤ {GOAL:.0f}%), "
               f"{n} processes, {startup / max(n, 1):.1f} s each; between stages (DVC): {between:.0f} s")
    unknown = sum(f["unknown"] + f["untimed"] for f in fams.values())
    if unknown:
        out.append(f"  not counted (unknown, not zero): {sum(f['unknown'] for f in fams.values())} processes without a start "
                   f"stamp, {sum(f['untimed'] for f in fams.values())} artifacts without timing")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="runs/default")
    ap.add_argument("--start", help="ISO time `dvc repro` started (e.g. from `date -Iseconds`)")
    args = ap.parse_args()
    rows = artifacts(Path(args.root))
    if args.start:
        rows = [a for a in rows if a.when >= dt.datetime.fromisoformat(args.start).timestamp()]
    if not rows:
        print(f"{args.root}: no stage wrote an artifact{' since ' + args.start if args.start else ''} (nothing to time)")
        return
    print(report(rows, origin_of(rows, args.start)))


if __name__ == "__main__":
    main()
