"""The base of every artifact kind: a folder, its typed manifest, read (checked) and sealed (written last)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from stages.io.manifest import MANIFEST, Manifest, read_manifest, write_manifest

M = TypeVar("M", bound=Manifest)


class Artifact(Generic[M]):
    """A finished artifact folder and its manifest. A kind that downstream stages open names its folder
    (`path(layout, *ids)`), the command that rebuilds it (`hint(*ids, seed=)`) and its one compatibility
    check (`check(run, *ids)`); `open(run, *ids)` runs the three."""

    Manifest: ClassVar[type[Manifest]]

    def __init__(self, folder: str | Path, manifest: M, seed: int | None = None):
        self.folder, self.manifest, self.seed = Path(folder), manifest, seed

    @staticmethod
    def path(layout, *ids) -> Path:
        raise NotImplementedError

    @staticmethod
    def hint(*ids, seed: int) -> str:
        raise NotImplementedError

    def check(self, run, *ids) -> None:
        """Does this artifact fit `run`? A one-line OsrmError naming the field otherwise (default: nothing to check)."""

    @classmethod
    def open(cls, run, *ids):
        """The artifact `ids` of the run's seed: read (manifest parsed, files verified), then checked against `run`."""
        art = cls.read(cls.path(run.layout, *ids), cls.hint(*ids, seed=run.layout.seed), run.layout.seed)
        art.check(run, *ids)
        return art

    def fix(self, *ids) -> str:
        return f"rerun `{self.hint(*ids, seed=self.seed)}`"

    @classmethod
    def read(cls, folder: str | Path, hint: str, seed: int | None = None):
        """The artifact at `folder` (manifest parsed, every file's hash verified) or a one-line OsrmError
        naming `hint`, the command that (re)builds it."""
        return cls(folder, read_manifest(folder, cls.Manifest, hint), seed)

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
