"""Typer options shared by the stages; help texts come from the pydantic fields (one source of truth)."""

from __future__ import annotations

from pathlib import Path

import typer

from osrm_pipeline.pipeline_config import PipelineConfig


def _help(model, field: str) -> str:
    return model.model_fields[field].description or ""


CONFIG = typer.Option(Path("pipeline.yaml"), "--config", "-c", help="pipeline.yaml: every parameter of every stage.")
TASK = typer.Option(..., "--task", "-t", help="Task name (one of the config's `tasks`, or of its suite).")
TASKS = typer.Option(..., "--task", "-t", help="Task name (one of the config's `tasks`). Repeat for several, or 'all' = every "
                     "task of the config, one after another in this one process (what dvc.yaml runs).")
ARM = typer.Option(..., "--arm", "-a", help="Which arm (a key of the config's `arms`: an init plus lora/osrm overrides).")
SEED = typer.Option(None, "--seed", help="Which of the config's `seeds` this process runs; default: the first.")
WORKDIR = typer.Option(None, "--workdir", help=_help(PipelineConfig, "workdir") + " Overrides the config.")


def expand_all(values: list[str], everything: list[str], check=lambda v: v) -> list[str]:
    """A repeatable option's values: 'all' -> `everything`, others through `check` (which raises on a bad
    one); order kept, duplicates dropped."""
    out = []
    for v in values:
        out += list(everything) if v == "all" else [check(v)]
    return list(dict.fromkeys(out))


def run_overrides(workdir: Path | None, seed: int | None = None) -> dict:
    """Config overrides from the options every stage shares (None = keep the config's value)."""
    return {"workdir": str(workdir) if workdir else None, "seed": seed}
