"""Deterministic safetensors writing.

safetensors serialises `__metadata__` from a Rust HashMap, so with two or more metadata keys the header
(and thus the file's hash) changes from process to process. `save_file` here writes the same tensors
with the metadata keys sorted, so equal inputs give byte-identical files (content hashes in manifests).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors.torch import save as _save


def to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """safetensors bytes with a canonical header: metadata first with sorted keys, tensors in file order."""
    raw = _save({k: v.contiguous() for k, v in tensors.items()})
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    canon = {"__metadata__": dict(sorted({k: str(v) for k, v in metadata.items()}.items()))} if metadata else {}
    canon.update(sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]))
    text = json.dumps(canon, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n:]


def save_file(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Drop-in for safetensors.torch.save_file with a byte-stable header."""
    with open(path, "wb") as fh:
        fh.write(to_bytes(tensors, metadata))
