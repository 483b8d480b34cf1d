"""`osrm` — the entry point. Stage modules are imported only when their command runs, so a stage
pays only for the libraries it uses (PEFT alone costs seconds to import; a SLURM job should not)."""

from __future__ import annotations

import importlib

import typer
from typer.core import TyperGroup

# command name -> (module, attribute): a Typer command function or a Typer sub-app
COMMANDS = {
    "extract-features": ("stages.extract_features", "main"),
    "build-subspace": ("stages.build_subspace", "main"),
    "finetune": ("stages.finetune", "main"),
    "convert": ("stages.convert", "app"),
    "merge": ("stages.merge", "main"),
    "evaluate": ("stages.evaluate", "main"),
    "diagnose": ("stages.diagnose", "app"),
    "select": ("stages.select", "main"),
    "export": ("stages.export", "main"),
    "predict": ("stages.predict", "main"),
    "report": ("stages.report", "main"),
    "calibrate": ("stages.calibrate", "main"),
    "submit": ("stages.submit", "app"),
    "run": ("stages.run_all", "main"),
    "init": ("stages.init", "main"),
}
HELP = (
    "OSRM pipeline: extract-features -> build-subspace -> finetune -> convert -> merge -> evaluate, select (-> diagnose -> report). "
    "Every stage reads pipeline.yaml (--config) and writes its artifact plus a manifest under `workdir`. "
    "`dvc repro` runs them all; `osrm submit` sends them to SLURM."
)


def load_command(name: str):
    module, attr = COMMANDS[name]
    obj = getattr(importlib.import_module(module), attr)
    if not isinstance(obj, typer.Typer):
        sub = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
        sub.command(name)(obj)
        obj = sub
    obj.pretty_exceptions_enable = False
    cmd = typer.main.get_command(obj)
    cmd.name = name
    return cmd


class LazyGroup(TyperGroup):
    """A Typer group whose sub-commands are imported on first use."""

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, name: str):
        return load_command(name) if name in COMMANDS else None


app = LazyGroup(name="osrm", help=HELP, no_args_is_help=True, rich_markup_mode=None,
                context_settings={"help_option_names": ["-h", "--help"]})

if __name__ == "__main__":
    app()
