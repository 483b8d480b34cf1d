"""The base of every artifact kind: a folder, its typed manifest, read (checked) and sealed (written last)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from stages.io.manifest import MANIFEST, Manifest, read_manifest, write_manifest

M = TypeVar("M", bound=Manifest)


class Artifact(Generic[M]):
    """A finished artifact folder and its manifest. Subclasses set `Manifest` and add `open(run, ...)`:
    the path from the layout, `read`, and the one compatibility check of that kind."""

    Manifest: ClassVar[type[Manifest]]

    def __init__(self, folder: str | Path, manifest: M):
        self.folder, self.manifest = Path(folder), manifest

    @classmethod
    def read(cls, folder: str | Path, hint: str):
        """The artifact at `folder` (manifest parsed, every file's hash verified) or a one-line OsrmError
        naming `hint`, the command that (re)builds it."""
        return cls(folder, read_manifest(folder, cls.Manifest, hint))

    @classmethod
    def seal(cls, tmp: str | Path, config: dict, upstream: dict[str, str], **fields) -> M:
        """Write the manifest into a finished temporary folder (its last file; the folder is renamed after)."""
        return write_manifest(tmp, cls.Manifest, config, upstream, **fields)

    @property
    def content_hash(self) -> str:
        return self.manifest.content_hash


def recorded_hash(folder: Path) -> str | None:
    """The content hash an existing artifact's manifest records (unverified; None if there is none)."""
    import json

    try:
        return json.loads((folder / MANIFEST).read_text()).get("content_hash")
    except (OSError, ValueError, AttributeError):
        return None
