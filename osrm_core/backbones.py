"""Backbones: a YAML spec per model (configs/backbones/) and one loader for folders, packages and hub ids."""

from __future__ import annotations

import glob
import importlib.util
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from osrm_core.errors import OsrmError

Family = Literal["encoder", "decoder", "encoder-decoder"]


def configs_dir() -> Path:
    """The repo's configs/ folder (override with OSRM_CONFIGS_DIR)."""
    return Path(os.environ.get("OSRM_CONFIGS_DIR") or Path(__file__).resolve().parents[1] / "configs")


class BackboneSpec(BaseModel):
    """A backbone: where its weights are and which linear layers each block letter targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    family: Family
    source: str = Field(description="Local folder, 'package:<module>/<subdir>' or a hub id.")
    targets: dict[Literal["q", "k", "v", "o"], str] = Field(description="Block letter -> module-name suffix.")
    gguf_file: str | None = Field(None, description="GGUF file name (glob) inside the source folder.")
    trust_remote_code: bool = Field(False, description="Run code shipped with the checkpoint (off unless set).")

    def target_suffixes(self, blocks: str) -> list[str]:
        """Module-name suffixes for block letters, e.g. 'qv' -> ['query', 'value']."""
        missing = [b for b in blocks if b not in self.targets]
        if missing:
            raise OsrmError(f"lora.blocks: backbone '{self.name}' defines no block {missing} — use letters from {sorted(self.targets)}")
        return [self.targets[b] for b in blocks]


def load_spec(name_or_path: str) -> BackboneSpec:
    """Read configs/backbones/<name>.yaml, or a YAML file path, or wrap a bare model folder."""
    path = Path(name_or_path)
    if path.is_dir():
        raise OsrmError(f"backbone: {path} is a model folder — write a backbone YAML with `source: {path}` and its targets")
    if path.suffix not in (".yaml", ".yml") and "/" not in name_or_path:  # a name; may contain dots (llama-3.2-1b)
        path = configs_dir() / "backbones" / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (configs_dir() / "backbones").glob("*.yaml"))
        raise OsrmError(f"backbone: '{name_or_path}' not found — use one of {known} or a path to a backbone YAML")
    try:
        return BackboneSpec.model_validate(yaml.safe_load(path.read_text()))
    except (ValidationError, yaml.YAMLError) as err:
        raise OsrmError(f"{path}: invalid backbone spec ({str(err).splitlines()[0]}) — fix that file") from None


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_source(spec: BackboneSpec) -> tuple[str, str | None]:
    """(folder or hub id, gguf file name or None). Packages resolve to their installed folder."""
    src = spec.source
    if src.startswith("package:"):
        module, _, sub = src[len("package:"):].partition("/")
        root = _package_dir(module)
        if root is None:
            raise OsrmError(f"backbone '{spec.name}': package '{module}' is not installed — run scripts/setup.sh")
        src = str(root / sub) if sub else str(root)
    gguf = None
    if spec.gguf_file:
        hits = sorted(glob.glob(str(Path(src) / spec.gguf_file)))
        if not hits:
            raise OsrmError(f"backbone '{spec.name}': no file matching {spec.gguf_file} in {src} — fix gguf_file")
        gguf = Path(hits[0]).name
    looks_local = src.startswith(("/", ".", "~")) or Path(src).exists()
    if looks_local and not Path(src).is_dir():
        raise OsrmError(f"backbone '{spec.name}': folder {src} does not exist — fix `source` in its YAML")
    return src, gguf


_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".gguf", ".pt", ".pth"}


def _check_json(path: Path, name: str) -> None:
    import json

    try:
        json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise OsrmError(f"backbone '{name}': {path} is unreadable ({type(err).__name__}) — the model folder is damaged; "
                        "re-export it or fix `source` in its YAML") from None


def _check_safetensors(path: Path, name: str) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            f.keys()
    except Exception as err:  # safetensors raises its own error type for damaged headers
        raise OsrmError(f"backbone '{name}': {path} is damaged ({type(err).__name__}) — re-export the weights "
                        "or fix `source` in its YAML") from None


def check_local(spec: BackboneSpec) -> None:
    """Fail early, in one line, when a local backbone folder lacks or has damaged config/weights files."""
    src, gguf = resolve_source(spec)
    folder = Path(src)
    if not folder.is_dir():
        return  # a hub id: checked when it is loaded
    if not gguf:
        if not (folder / "config.json").is_file():
            raise OsrmError(f"backbone '{spec.name}': {folder} has no config.json — point `source` at a save_pretrained() folder")
        _check_json(folder / "config.json", spec.name)
    weights = [f for f in folder.iterdir() if f.suffix in _WEIGHT_SUFFIXES and f.is_file()]
    if not weights:
        raise OsrmError(f"backbone '{spec.name}': no weight files (*.safetensors, *.bin, *.gguf) in {folder} — fix `source` in its YAML")
    for f in weights:
        if f.suffix == ".safetensors":
            _check_safetensors(f, spec.name)


def weights_fingerprint(spec: BackboneSpec) -> str:
    """Identity of the weights: sha256 over each weight/config file's name, first and last MiB; or the hub id.

    Partial (cheap on multi-GB checkpoints) but it changes with any re-export, re-quantisation or resize.
    """
    import hashlib

    src, gguf = resolve_source(spec)
    folder = Path(src)
    if not folder.is_dir():
        return f"hub:{src}"
    h = hashlib.sha256()
    for f in sorted(folder.glob("*")):
        if f.suffix in {".safetensors", ".bin", ".gguf", ".json"} and f.is_file():
            h.update(f.name.encode())
            with f.open("rb") as fh:  # first and last MiB: cheap but changes with any re-export
                h.update(fh.read(1 << 20))
                fh.seek(max(0, f.stat().st_size - (1 << 20)))
                h.update(fh.read())
    return h.hexdigest()
