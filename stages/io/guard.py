"""Turn user errors into one line on stderr and a non-zero exit, with no traceback; stamp when the process
started and when its command's work began (the manifests' `timing`, read by benchmarks/pipeline_timing.py)."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
import warnings

import typer

from osrm_core.errors import OsrmError

# This process's stamps (epoch seconds). main_start moves to each command entered until the first manifest
# is written (`process_timing` freezes it): under `osrm run` the first stage command, not the runner, is where
# work begins, and the later commands of that process share the one start-up instead of counting it again.
_STAMPS: dict = {"process_start": None, "main_start": None, "frozen": False}


def _process_start() -> float | None:
    try:
        import psutil
    except ImportError:  # an optional dependency: start unknown
        return None
    try:
        return psutil.Process().create_time()
    except (psutil.Error, OSError):  # e.g. a sandbox without /proc
        return None


def _preload(modules: tuple[str, ...]) -> None:
    """Import what the command imports lazily anyway, so that it counts as start-up, not work."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:  # not installed: the command itself says so, where it needs it
            pass


def process_timing() -> dict:
    """{pid, process_start, main_start} of this process (None where unknown); freezes main_start."""
    _STAMPS["frozen"] = True
    start = _STAMPS["process_start"] or _process_start()  # also outside a command (a library call)
    return {"pid": os.getpid(), "process_start": start, "main_start": _STAMPS["main_start"]}


def quiet_libraries() -> None:
    """What the libraries print that is not the user's business: PEFT reads transformers' deprecated
    `is_gradient_checkpointing` on every adapter it wraps (a FutureWarning nobody here can act on; dropped by its
    exact text, so every other warning shows), and with OSRM_NO_PROGRESS set their own bars go too
    (transformers' "Loading weights", datasets' maps): the env variables for libraries not imported yet, the
    switches for those that are."""
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    if not os.environ.get("OSRM_NO_PROGRESS"):
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    for module, switch in (("huggingface_hub.utils", "disable_progress_bars"), ("transformers.utils.logging", "disable_progress_bar"),
                           ("datasets", "disable_progress_bars")):
        if module in sys.modules:
            getattr(sys.modules[module], switch)()


def guarded(fn=None, *, preload: tuple[str, ...] = ()):
    """Decorator for Typer commands: OsrmError -> `error: <message>` and exit code 2. `@guarded(preload=(...))`
    names modules the command imports lazily (python -X importtime shows which): they are imported before the
    work is stamped as begun, so their import time counts as process start-up."""
    if fn is None:
        return functools.partial(guarded, preload=preload)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        quiet_libraries()
        if not _STAMPS["frozen"]:
            _preload(preload)
            if _STAMPS["process_start"] is None:
                _STAMPS["process_start"] = _process_start()
            _STAMPS["main_start"] = time.time()
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
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, dynamic_ncols=True,
                disable=bool(os.environ.get("OSRM_NO_PROGRESS")), leave=False)
