"""Atomic artifacts: write into a hidden temporary sibling, then rename into place.

After a crash you find the old artifact or the new one, never a partial one: a reader only accepts a
folder that holds a manifest, and the manifest is the last file written before the rename.

Temporary siblings are named `.<name>.tmp-<pid>-<rand>-<host>`; ones left by a dead process of this
host (kill -9) are removed by the next write of the same artifact. Replacing an existing folder takes two renames
(old -> `.<name>.old-<rand>`, tmp -> final); if a process dies between them, the next reader or
writer of that artifact renames the old one back (`recover`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path

from osrm_core.errors import OsrmError


def _check_writable(parent: Path) -> None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OsrmError(f"cannot create output folder {parent}: {err.strerror} — choose a writable `workdir` (or --out)") from None
    if not os.access(parent, os.W_OK):
        raise OsrmError(f"output folder {parent} is not writable — fix its permissions or choose another `workdir` (or --out)")


def _is_ours(final: Path, name) -> bool:
    """Whether an OSError's file is the artifact's own: `final`, its temp or old siblings, or their folder.
    No file name (a failed write() on an open file) counts as the artifact's: a failed open or read names its file."""
    if not isinstance(name, (str, bytes, os.PathLike)):
        return True
    path, parent = Path(os.fsdecode(name)).absolute(), final.parent.absolute()
    if path == parent:
        return True
    if not path.is_relative_to(parent):
        return False
    first = path.relative_to(parent).parts[0]
    return first == final.name or first.startswith(f".{final.name}.")


def write_error(final: Path, err: OSError) -> OsrmError:
    """The one-line error for an OSError raised while an artifact was being written: a failed write of the
    artifact, or a failed read of another file (an input), named as such."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return OsrmError(f"disk full while writing {final} — free space and rerun; the previous artifact is untouched")
    what = err.strerror or type(err).__name__
    if not _is_ours(final, err.filename):
        return OsrmError(f"cannot read {os.fsdecode(err.filename)}: {what} (while making {final}) — check that file "
                         "and its permissions, then rerun; the previous artifact is untouched")
    return OsrmError(f"cannot write {final}: {what} — check the folder's permissions and free space, then rerun; "
                     "the previous artifact is untouched")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmp_name(final: Path) -> str:
    """`.<name>.tmp-<pid>-<rand>-<host>`: the host keeps a sweep on one node off another node's live writer."""
    return f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{socket.gethostname()}"


def sweep_stale(final: Path) -> None:
    """Remove temporary siblings of `final` left by processes of this host that no longer run."""
    if not final.parent.is_dir():
        return
    for p in final.parent.glob(f".{final.name}.tmp-*"):
        pid, _, rest = p.name.rsplit(".tmp-", 1)[1].partition("-")
        host = rest.partition("-")[2]
        if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def recover(final: str | Path) -> None:
    """If a swap was interrupted between its two renames, put the previous artifact back."""
    final = Path(final)
    if final.exists() or not final.parent.is_dir():
        return
    olds = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        olds[-1].rename(final)


def _swap(tmp: Path, final: Path) -> None:
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


@contextmanager
def atomic_dir(final: str | Path):
    """Yield a fresh temp folder; on success it replaces `final` (old one kept until the swap succeeds)."""
    final = Path(final)
    _check_writable(final.parent)
    recover(final)
    sweep_stale(final)
    tmp = final.parent / _tmp_name(final)
    try:
        tmp.mkdir()
        yield tmp
        _swap(tmp, final)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(final, err) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_file_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    _check_writable(path.parent)
    tmp = path.parent / _tmp_name(path)
    try:
        with tmp.open("w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, data) -> None:
    """Write JSON via a temp file + os.replace (same folder, so the rename is atomic)."""
    _write_file_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
