"""The zarr feature cache of one task: `<workdir>/features/<task>/features.zarr`.

Layout (W = number of writer ranks; each rank writes only its own shard, whole-shard writes):
  sample_mean/<module>  (k x d_in) float32, chunk/shard = one rank's block of rows
  gram/<module>         (W x d_in x d_in) float64, one shard per rank; readers sum over axis 0
  count/<module>        (W,) int64 token counts
  attrs: modules, aliases (module -> module whose input it shares), dims, k, world
Modules that receive the same input (q/k/v of one block) are stored once and aliased.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import zarr

from osrm_core.errors import OsrmError

STORE = "features.zarr"


def create(folder: Path, modules: dict[str, int], aliases: dict[str, str], k: int, world: int) -> zarr.Group:
    """Create empty arrays for `modules` (name -> d_in) sized for k rows and `world` writers."""
    g = zarr.open_group(str(folder / STORE), mode="w")
    block = -(-k // world)
    for name, d in modules.items():
        g.create_array(f"sample_mean/{name}", shape=(k, d), dtype="float32", chunks=(block, d))
        g.create_array(f"gram/{name}", shape=(world, d, d), dtype="float64", chunks=(1, d, d))
        g.create_array(f"count/{name}", shape=(world,), dtype="int64", chunks=(1,))
    g.attrs.update({"modules": sorted(aliases), "aliases": aliases, "dims": modules, "k": k, "world": world})
    return g


def write_shard(folder: Path, rank: int, start: int, rows: dict[str, torch.Tensor],
                grams: dict[str, torch.Tensor], counts: dict[str, int]) -> None:
    """Rank `rank` writes its rows [start, start+n) and its Gram/count shard."""
    g = zarr.open_group(str(folder / STORE), mode="r+")
    for name, r in rows.items():
        g[f"sample_mean/{name}"][start:start + r.shape[0]] = r.numpy().astype(np.float32)
        g[f"gram/{name}"][rank] = grams[name].numpy()
        g[f"count/{name}"][rank] = counts[name]


class FeatureCache:
    """Read side of one task's features; Grams are summed over rank shards on read."""

    def __init__(self, folder: str | Path):
        path = Path(folder) / STORE
        try:
            self.group = zarr.open_group(str(path), mode="r")
            self.attrs = self.group.attrs.asdict()
            self.aliases: dict[str, str] = self.attrs["aliases"]
        except Exception as err:  # zarr raises several types for damaged stores
            raise OsrmError(f"{path} is unreadable ({type(err).__name__}) — delete it and rerun `osrm extract-features`") from None

    def _get(self, kind: str, module: str) -> np.ndarray:
        name = self.aliases.get(module)
        if name is None:
            raise OsrmError(f"{self.group.store}: no features for module '{module}' — re-extract with the same lora.blocks")
        try:
            return self.group[f"{kind}/{name}"][...]
        except Exception as err:
            raise OsrmError(f"{self.group.store}: {kind}/{name} is damaged ({type(err).__name__}) — rerun `osrm extract-features`") from None

    def rows(self, module: str) -> torch.Tensor:
        """Sample-mean rows (k x d_in) float32."""
        return _finite(torch.from_numpy(self._get("sample_mean", module)), module, self.group.store)

    def gram(self, module: str) -> torch.Tensor:
        """Token Gram sum_h h h^T (d_in x d_in) float64, summed over rank shards."""
        return _finite(torch.from_numpy(self._get("gram", module)).sum(0), module, self.group.store)

    def count(self, module: str) -> int:
        return int(self._get("count", module).sum())


def _finite(t: torch.Tensor, module: str, where) -> torch.Tensor:
    if not torch.isfinite(t).all():
        raise OsrmError(f"{where}: features of '{module}' contain NaN/Inf — check the backbone dtype and rerun `osrm extract-features`")
    return t
