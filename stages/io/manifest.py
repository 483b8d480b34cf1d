"""Manifests: one `manifest.json` per artifact folder, written last, checked by every reader."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from osrm_core.errors import OsrmError
from stages.io.atomic import write_json_atomic

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
_PACKAGES = ("torch", "transformers", "peft", "zarr", "safetensors", "deepspeed", "numpy")


def content_hash(folder: str | Path) -> str:
    """sha256 over every file in `folder` except the manifest (relative path + bytes), sorted."""
    folder = Path(folder)
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        h.update(str(f.relative_to(folder)).encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parents[2])
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    out = {}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_manifest(folder: str | Path, stage: str, config: dict, upstream: dict[str, str], **extra) -> dict:
    """Write the manifest (last file of an artifact). `config` is the resolved config that matters here."""
    folder = Path(folder)
    cfg_json = json.dumps(config, sort_keys=True)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "stage": stage,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "config_hash": hashlib.sha256(cfg_json.encode()).hexdigest(),
        "upstream": upstream,
        "versions": _versions(),
        "git_commit": _git_commit(),
        "content_hash": content_hash(folder),
        **extra,
    }
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path, stage: str, hint: str) -> dict:
    """The manifest of a finished artifact, or a one-line OsrmError that says which command makes it."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise OsrmError(f"{folder} is missing or incomplete (no {MANIFEST}) — run `{hint}` first")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OsrmError(f"{path} is damaged (not JSON) — delete {folder} and rerun `{hint}`") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise OsrmError(f"{path}: schema version {manifest.get('schema_version')} != {SCHEMA_VERSION} — rerun `{hint}`")
    if manifest.get("stage") != stage:
        raise OsrmError(f"{path} was written by stage '{manifest.get('stage')}', expected '{stage}' — check the path")
    return manifest


def require_same(field: str, expected, got, path, fix: str) -> None:
    """One-line error when an upstream manifest disagrees with what this stage needs."""
    if expected != got:
        raise OsrmError(f"{path}: {field} is {got!r}, this run needs {expected!r} — {fix}")
