"""`osrm calibrate`: simulate studies with a known truth and print the false-verdict rate and the power of the
report's seed-level verdicts (osrm_core/calibration.py; the figures in docs/statistics.md come from this command)."""

from __future__ import annotations

from pathlib import Path

import typer

from osrm_core.calibration import KINDS, TWO_ACCURACY, rate
from osrm_core.errors import OsrmError
from stages.io.atomic import write_json_atomic
from stages.io.guard import guarded, progress

SEEDS = typer.Option([3, 5, 10], "--seeds", help="Seed counts to simulate (repeat the option).")
SDS = typer.Option([0.0, 2.0, 4.0], "--seed-sd", help="Seed-to-seed sd of an arm's score, points (repeat the option).")
METRICS = typer.Option(list(TWO_ACCURACY), "--metric", help=f"One simulated task per use, by its metric (repeat the option; a "
                       f"study's own mix, e.g. its suite's metrics), of {sorted(KINDS)}.")


@guarded
def main(seeds: list[int] = SEEDS, seed_sd: list[float] = SDS,
         studies: int = typer.Option(400, "--studies", min=10, help="Simulated studies per cell."),
         delta: float = typer.Option(3.0, "--delta", help="True difference (points) of the power row (10 seeds, sd 2)."),
         n_boot: int = typer.Option(100, "--n-boot", min=10, help="Row-bootstrap replicates per simulated comparison."),
         n_rows: int = typer.Option(300, "--rows", min=10, help="Test rows per simulated task."),
         metric: list[str] = METRICS,
         shared: float = typer.Option(0.0, "--shared", min=0.0, max=1.0,
                                      help="Share of the seed variance common to every task of a run (0: each task's own)."),
         json_out: Path | None = typer.Option(None, "--json", help="Also write the table as JSON here.")) -> None:
    """False-verdict rate under the null (true Δ = 0) per seed count × seed sd, for the seed-level interval, its
    conservative total-row-term variant and the seeds × rows percentile bootstrap it replaced, and the power to detect
    a true +delta with 10 seeds, sd 2 (on the mix's classification tasks: a true delta is defined for those)."""
    unknown = sorted(set(metric) - set(KINDS))
    if unknown:
        raise OsrmError(f"--metric: no simulation for {unknown} — use metrics of {sorted(KINDS)}")
    mix = tuple(metric)
    power_mix = tuple(m for m in mix if KINDS[m].classes) or TWO_ACCURACY
    sim = dict(n_studies=studies, n_boot=n_boot, n_rows=n_rows, shared=shared)
    rows = []
    cells = [(k, sd) for k in seeds for sd in seed_sd]
    for k, sd in progress(cells, "simulated cells"):
        new, total, old = (rate(k, sd, seed=100 * k + int(sd), method=m, metrics=mix, **sim)
                           for m in ("seed", "seed_total", "seeds_x_rows"))
        rows.append({"seeds": k, "seed_sd": sd, "seed_level": new.any, "seed_level_normalised": new.norm_any,
                     "seed_level_total_rows": total.any, "seeds_x_rows_bootstrap": old.any})
    power, power_total = (rate(10, 2.0, delta=delta, seed=7, method=m, metrics=power_mix, **sim) for m in ("seed", "seed_total"))
    print("| seeds | seed sd | false verdicts: seed-level (average) | seed-level (normalised) | "
          "total row term (average) | seeds × rows bootstrap |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seeds']} | {r['seed_sd']:g} | {r['seed_level']:.3f} | {r['seed_level_normalised']:.3f} | "
              f"{r['seed_level_total_rows']:.3f} | {r['seeds_x_rows_bootstrap']:.3f} |")
    print(f"\npower to detect +{delta:g} points, 10 seeds, sd 2: {power.better:.3f} (average), "
          f"{power.norm_better:.3f} (normalised); with the total row term {power_total.better:.3f} / "
          f"{power_total.norm_better:.3f} (tasks {', '.join(power_mix)}); {studies} studies per cell, {n_rows} rows × "
          f"tasks {', '.join(mix)}, {n_boot} row replicates, shared seed variance {shared:g}")
    if json_out is not None:
        write_json_atomic(json_out, {"null": rows, "power": power._asdict(), "power_total_rows": power_total._asdict(),
                                     "delta": delta, "studies": studies,
                                     "metrics": list(mix), "power_metrics": list(power_mix), "rows": n_rows,
                                     "shared": shared})
