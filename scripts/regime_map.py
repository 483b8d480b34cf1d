"""One backbone's regime map (docs/regimes.md) from a finished run: every arm vs the reference and vs a control arm of
the same ‖A₀‖ (the seed-level interval, validation-chosen merges Holm-adjusted per comparator), with its regime.
Writes OUT.json (the numbers) and OUT.png (the plot) and prints the table (osrm_core.regime_map).

Usage: python scripts/regime_map.py CONFIG CONTROL OUT [--workdir DIR]
  e.g. python scripts/regime_map.py configs/regimes.yaml orthonormal docs/results/regime_map_minilm"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from osrm_core import regime_map
from osrm_core.study import study
from osrm_pipeline.run import open_run
from stages.io.options import run_overrides
from stages.report import N_BOOT, diagnostics, load, regime_section


def collect(config: Path, control: str, workdir: Path | None = None, n_boot: int = 1000) -> dict:
    """The map's numbers for one run (JSON-ready)."""
    run = open_run(config, run_overrides(workdir))
    if control not in run.cfg.arms:
        raise typer.BadParameter(f"{config}: arms has no '{control}' (the control arm)")
    models, base, _, rows, _ = load(run)
    primary = tuple(m for m in run.cfg.study.primary if m in run.cfg.merge.methods)
    vs = {name: study(models, base, rows, name, n_boot=n_boot, primary=primary, level=run.cfg.study.level)
          for name in (run.cfg.reference, control)}
    _, diag = diagnostics(run.layout.diagnostics_summary())
    _, regimes = regime_section(run)  # the report's regime numbers (first seed with subspaces)
    points = [regime_map.point(arm, regimes.get(arm), diag.get(arm, {}).get("other_energy_init"),
                               vs[run.cfg.reference], vs[control]) for arm in run.cfg.arms]
    return {"backbone": run.spec.name, "config": str(config), "seeds": run.cfg.seeds, "reference": run.cfg.reference,
            "control": control, "primary": list(primary), "points": points}


def main(config: Path, control: str, out: Path, workdir: Path = typer.Option(None), n_boot: int = N_BOOT) -> None:
    m = collect(config, control, workdir, n_boot)
    out.with_suffix(".json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
    regime_map.plot(m, out.with_suffix(".png"))
    print(regime_map.table(m))


if __name__ == "__main__":
    typer.run(main)
