"""Turn user errors into one line on stderr and a non-zero exit, with no traceback."""

from __future__ import annotations

import functools
import sys

import typer

from osrm_core.errors import OsrmError


def guarded(fn):
    """Decorator for Typer commands: OsrmError -> `error: <message>` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OsrmError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: nothing partial was written (artifacts are renamed into place only when complete)", err=True)
            raise typer.Exit(130) from None

    return wrapper


def progress(iterable, desc: str, total: int | None = None):
    """A tqdm bar on stderr (quiet when OSRM_NO_PROGRESS is set, e.g. in tests)."""
    import os

    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, dynamic_ncols=True,
                disable=bool(os.environ.get("OSRM_NO_PROGRESS")), leave=False)
