"""Manifests: one `manifest.json` per artifact folder, written last, checked by every reader."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from osrm_core.errors import OsrmError
from stages.io.atomic import recover, write_json_atomic

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
_PACKAGES = ("torch", "transformers", "peft", "zarr", "safetensors", "deepspeed", "numpy")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST)


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(folder: str | Path) -> dict[str, str]:
    """{relative path: sha256} of every file in `folder` except the manifest."""
    folder = Path(folder)
    if folder.is_file():
        return {folder.name: file_hash(folder)}
    return {f.relative_to(folder).as_posix(): file_hash(f) for f in _files(folder)}


def content_hash(folder: str | Path, files: dict[str, str] | None = None) -> str:
    """sha256 over every file in `folder` except the manifest (relative path + file sha256), sorted.

    The manifest itself is excluded, so two runs with the same config and seed give the same hash.
    """
    files = file_hashes(folder) if files is None else files
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + files[rel].encode() + b"\n")
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


def _find_seed(config: dict):
    """The seed that governs an artifact: `seed` at the top of its config, else the first nested one."""
    if "seed" in config:
        return config["seed"]
    for value in config.values():
        if isinstance(value, dict) and "seed" in value:
            return value["seed"]
    return None


def write_manifest(folder: str | Path, stage: str, config: dict, upstream: dict[str, str], **extra) -> dict:
    """Write the manifest (last file of an artifact). `config` is the resolved config that matters here.

    Records per-file sha256 (`files`) so readers can name the exact file that was damaged.
    """
    folder = Path(folder)
    cfg_json = json.dumps(config, sort_keys=True, default=str)
    files = file_hashes(folder)
    seed = extra.pop("seed", _find_seed(config))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "stage": stage,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "config_hash": hashlib.sha256(cfg_json.encode()).hexdigest(),
        "upstream": upstream,
        "seed": seed,
        "versions": _versions(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "files": files,
        "content_hash": content_hash(folder, files),
        **extra,
    }
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path, stage: str, hint: str, verify: bool = True) -> dict:
    """The manifest of a finished artifact, or a one-line OsrmError that says which command makes it.

    With `verify`, every file's sha256 is checked against the manifest: a truncated, corrupted, missing
    or extra file is a one-line error naming that file.
    """
    recover(folder)
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
    if verify:
        verify_files(Path(folder), manifest, hint)
    return manifest


def verify_files(folder: Path, manifest: dict, hint: str) -> None:
    """One-line OsrmError naming the first file that differs from what the manifest recorded."""
    recorded = manifest.get("files")
    if recorded is None:  # written before per-file hashes were recorded: nothing to check against
        return
    actual = file_hashes(folder)
    for rel in sorted(set(recorded) | set(actual)):
        if rel not in actual:
            raise OsrmError(f"{folder / rel} is missing — the artifact is incomplete; delete {folder} and rerun `{hint}`")
        if rel not in recorded:
            raise OsrmError(f"{folder / rel} is not part of this artifact (added after it was written) — remove that file or rerun `{hint}`")
        if recorded[rel] != actual[rel]:
            raise OsrmError(f"{folder / rel} is corrupted or truncated (sha256 differs from {MANIFEST}) — delete {folder} and rerun `{hint}`")


def require_same(field: str, expected, got, path, fix: str) -> None:
    """One-line error when an upstream manifest disagrees with what this stage needs."""
    if expected != got:
        raise OsrmError(f"{path}: {field} is {got!r}, this run needs {expected!r} — {fix}")
