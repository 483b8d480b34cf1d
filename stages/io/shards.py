"""Streamed safetensors output: tensors are flushed to numbered shards as they come (bounded memory)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from stages.io.tensors import save_file

INDEX = "index.json"


class ShardWriter:
    """Collect tensors and write `<stem>-00001.safetensors`, ... whenever `max_bytes` is reached."""

    def __init__(self, folder: Path, stem: str, max_bytes: int = 1 << 30, metadata: dict | None = None):
        self.folder, self.stem, self.max_bytes = folder, stem, max_bytes
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}
        self.buffer: dict[str, torch.Tensor] = {}
        self.size = 0
        self.index: dict[str, str] = {}
        self.shards = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        self.buffer[name] = tensor.detach().contiguous().cpu()
        self.size += tensor.numel() * tensor.element_size()
        if self.size >= self.max_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        self.shards += 1
        fname = f"{self.stem}-{self.shards:05d}.safetensors"
        save_file(self.buffer, self.folder / fname, metadata=self.metadata)
        self.index.update({k: fname for k in self.buffer})
        self.buffer, self.size = {}, 0

    def close(self) -> None:
        self.flush()
        (self.folder / f"{self.stem}.{INDEX}").write_text(json.dumps(self.index, indent=1, sort_keys=True) + "\n")


def read_sharded(folder: Path, stem: str) -> dict[str, torch.Tensor]:
    """Every tensor written by a ShardWriter with that stem ({} if none)."""
    index_path = folder / f"{stem}.{INDEX}"
    if not index_path.is_file():
        return {}
    out = {}
    for fname in sorted(set(json.loads(index_path.read_text()).values())):
        with safe_open(str(folder / fname), "pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})
    return out
