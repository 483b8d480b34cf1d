"""Typer options shared by the stages; help texts come from the pydantic fields (one source of truth)."""

from __future__ import annotations

from pathlib import Path

import typer

from osrm_core.config import LoraConfig, PipelineConfig


def _help(model, field: str) -> str:
    return model.model_fields[field].description or ""


CONFIG = typer.Option(Path("pipeline.yaml"), "--config", "-c", help="pipeline.yaml: every parameter of every stage.")
TASK = typer.Option(..., "--task", "-t", help="Task name (one of the config's `tasks`, or of its suite).")
INIT = typer.Option(None, "--init", help=_help(LoraConfig, "init") + " Default: lora.init.")
WORKDIR = typer.Option(None, "--workdir", help=_help(PipelineConfig, "workdir") + " Overrides the config.")
INIT_REQ = typer.Option(..., "--init", help="Which adapters to use: the 'gaussian' or the 'osrm' ones.")
METHOD = typer.Option(..., "--method", "-m", help="Merge method (a key of osrm_core.merge.METHODS, e.g. task_arithmetic, ties).")
