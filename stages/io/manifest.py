"""Manifests: one `manifest.json` per artifact folder, written last, checked by every reader."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from osrm_core.errors import OsrmError
from stages.io.atomic import recover, write_json_atomic
from stages.io.guard import process_timing

SCHEMA_VERSION = 2  # 2: typed manifests per artifact kind (stages/io/artifacts/)
MANIFEST = "manifest.json"
M = TypeVar("M", bound="Manifest")
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


class BackboneId(BaseModel):
    """Which backbone an artifact was made on: config name, source, and the sha256 of its weights."""

    model_config = ConfigDict(extra="forbid")
    name: str
    source: str | None = None
    weights: str


class Timing(BaseModel):
    """When the process that wrote an artifact started, when its command's work began (after the imports it
    needs, stages/io/guard.py) and when the manifest was written: epoch seconds, None where unknown.
    main_start - process_start is the process's start-up; artifacts of one process share (pid, process_start)."""

    model_config = ConfigDict(extra="forbid")
    pid: int
    process_start: float | None = None
    main_start: float | None = None
    written: float


class Manifest(BaseModel):
    """Fields every manifest has; each artifact kind (stages/io/artifacts/) adds its own typed fields."""

    model_config = ConfigDict(extra="forbid")
    STAGE: ClassVar[str] = ""
    schema_version: int
    stage: str
    created: str
    config: dict[str, Any]
    config_hash: str
    upstream: dict[str, str]
    seed: int | None = None
    versions: dict[str, str]
    python: str
    git_commit: str | None = None
    files: dict[str, str]
    content_hash: str
    timing: Timing | None = None  # absent in manifests written before it existed


def write_manifest(folder: str | Path, kind: type[M], config: dict, upstream: dict[str, str], **fields) -> M:
    """Validate and write the manifest of kind `kind` (the last file of an artifact). `config` is the resolved
    config that matters here; `fields` are the kind's typed fields. Records per-file sha256 (`files`) so
    readers can name the exact file that was damaged."""
    folder = Path(folder)
    cfg_json = json.dumps(config, sort_keys=True, default=str)
    files = file_hashes(folder)
    now = datetime.now(timezone.utc)
    manifest = kind.model_validate({
        "schema_version": SCHEMA_VERSION,
        "stage": kind.STAGE,
        "created": now.isoformat(timespec="seconds"),
        "config": config,
        "config_hash": hashlib.sha256(cfg_json.encode()).hexdigest(),
        "upstream": upstream,
        "versions": _versions(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "files": files,
        "content_hash": content_hash(folder, files),
        "timing": {**process_timing(), "written": now.timestamp()},
        **fields,
    })
    write_json_atomic(folder / MANIFEST, manifest.model_dump(mode="json"))
    return manifest


def _load_json(path: Path, folder, hint: str) -> dict:
    if not path.is_file():
        raise OsrmError(f"{folder} is missing or incomplete (no {MANIFEST}) — run `{hint}` first")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OsrmError(f"{path} is damaged (not JSON) — delete {folder} and rerun `{hint}`") from None
    if not isinstance(data, dict):
        raise OsrmError(f"{path} is damaged (not a JSON object) — delete {folder} and rerun `{hint}`")
    return data


def read_manifest(folder: str | Path, kind: type[M], hint: str) -> M:
    """The manifest of a finished artifact of kind `kind`, or a one-line OsrmError that says which command
    makes it. Every file's sha256 is checked against the manifest: a truncated, corrupted, missing or
    extra file is a one-line error naming that file."""
    recover(folder)
    path = Path(folder) / MANIFEST
    data = _load_json(path, folder, hint)
    if data.get("schema_version") != SCHEMA_VERSION:
        raise OsrmError(f"{path}: manifest schema version {data.get('schema_version')} is not {SCHEMA_VERSION} "
                        f"(written by an older osrm) — rebuild it with `{hint}`")
    if data.get("stage") != kind.STAGE:
        raise OsrmError(f"{path} was written by stage '{data.get('stage')}', expected '{kind.STAGE}' — check the path")
    try:
        manifest = kind.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(map(str, first["loc"]))
        raise OsrmError(f"{path}: manifest field '{field}' is invalid ({first['msg']}) — rebuild it with `{hint}`") from None
    verify_files(Path(folder), manifest.files, hint)
    return manifest


def verify_files(folder: Path, recorded: dict[str, str], hint: str) -> None:
    """One-line OsrmError naming the first file that differs from what the manifest recorded."""
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
