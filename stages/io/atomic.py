"""Atomic artifacts: write into a hidden temporary sibling, then rename into place.

After a crash you find the old artifact or the new one, never a partial one: a reader only accepts a
folder that holds a manifest, and the manifest is the last file written before the rename.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from osrm_core.errors import OsrmError


def _check_writable(parent: Path) -> None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OsrmError(f"cannot create output folder {parent}: {err.strerror} — choose a writable `workdir`") from None
    if not os.access(parent, os.W_OK):
        raise OsrmError(f"output folder {parent} is not writable — fix its permissions or choose another `workdir`")


@contextmanager
def atomic_dir(final: str | Path):
    """Yield a fresh temp folder; on success it replaces `final` (old one kept until the swap succeeds)."""
    final = Path(final)
    _check_writable(final.parent)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        if final.exists():
            final.rename(old)
        try:
            tmp.rename(final)
        except OSError:
            if old.exists():
                old.rename(final)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno == 28:  # ENOSPC
            raise OsrmError(f"disk full while writing {final} — free space and rerun; the previous artifact is untouched") from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: str | Path, data) -> None:
    """Write JSON via a temp file + os.replace (same folder, so the rename is atomic)."""
    path = Path(path)
    _check_writable(path.parent)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    _check_writable(path.parent)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
