"""The zarr feature cache of one task: `<workdir>/features/seed<S>/<task>/features.zarr`.

Layout (W = number of writer ranks; each rank writes only its own shard, whole-shard writes):
  sample_mean/<module>  (k x d_in) float32, chunk/shard = one rank's block of rows
  gram/<module>         (W x d_in x d_in) float64, one shard per rank; readers sum over axis 0
  count/<module>        (W,) int64 token counts
  heldout_gram/<module>, heldout_count/<module>  the same for held-out rows (attrs.heldout: split, rows): rows of the
         validation split that built no subspace, for `osrm diagnose`'s held-out numbers (docs/diagnostics.md)
  attrs: modules, aliases (module -> module whose input it shares), dims, k, world, and draw: for each stored row
         (ascending train-row order) its position in the seeded draw. The rows with draw < k' are the sample
         that osrm.k = k' takes (FeatureCache.prefix): an arm with a smaller k uses them. Caches written before
         `draw` existed cannot be cut (a one-line error says to re-extract).
Modules that receive the same input (q/k/v of one block) are stored once and aliased.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import zarr

from osrm_core.errors import OsrmError

STORE = "features.zarr"


def create(folder: Path, modules: dict[str, int], aliases: dict[str, str], k: int, world: int,
           draw: list[int] | None = None, heldout: dict | None = None) -> zarr.Group:
    """Create empty arrays for `modules` (name -> d_in) sized for k rows and `world` writers; draw: each row's
    position in the seeded draw (stages.extract_features.sample_draw), k entries; heldout: {"split", "rows"} of the
    held-out rows whose Grams are stored too (None: none)."""
    g = zarr.open_group(str(folder / STORE), mode="w")
    block = -(-k // world)
    for name, d in modules.items():
        g.create_array(f"sample_mean/{name}", shape=(k, d), dtype="float32", chunks=(block, d))
        g.create_array(f"gram/{name}", shape=(world, d, d), dtype="float64", chunks=(1, d, d))
        g.create_array(f"count/{name}", shape=(world,), dtype="int64", chunks=(1,))
        if heldout is not None:
            g.create_array(f"heldout_gram/{name}", shape=(world, d, d), dtype="float64", chunks=(1, d, d))
            g.create_array(f"heldout_count/{name}", shape=(world,), dtype="int64", chunks=(1,))
    if heldout is not None:
        g.attrs["heldout"] = {"split": str(heldout["split"]), "rows": int(heldout["rows"])}
    g.attrs.update({"modules": sorted(aliases), "aliases": aliases, "dims": modules, "k": k, "world": world})
    if draw is not None:
        if len(draw) != k:
            raise ValueError(f"draw has {len(draw)} positions for k={k} rows")
        g.attrs["draw"] = [int(i) for i in draw]
    return g


def write_shard(folder: Path, rank: int, start: int, rows: dict[str, torch.Tensor],
                grams: dict[str, torch.Tensor], counts: dict[str, int],
                heldout: tuple[dict[str, torch.Tensor], dict[str, int]] | None = None) -> None:
    """Rank `rank` writes its rows [start, start+n), its Gram/count shard and (heldout: (grams, counts)) its
    held-out Gram/count shard."""
    g = zarr.open_group(str(folder / STORE), mode="r+")
    for name, r in rows.items():
        g[f"sample_mean/{name}"][start:start + r.shape[0]] = r.numpy().astype(np.float32)
        g[f"gram/{name}"][rank] = grams[name].numpy()
        g[f"count/{name}"][rank] = counts[name]
        if heldout is not None:
            g[f"heldout_gram/{name}"][rank] = heldout[0][name].numpy()
            g[f"heldout_count/{name}"][rank] = heldout[1][name]


PLAN = "plan.json"


def _done_path(folder: Path, rank: int) -> Path:
    return Path(folder) / "shards" / f"rank-{rank:05d}.done"


def prepare(folder: Path, plan: dict) -> bool:
    """Keep a staging folder whose plan (config digest, k, world) matches, else empty it; True if kept.

    Called by rank 0 alone, before any rank writes (resumable extraction keeps finished shards)."""
    import json
    import shutil

    folder = Path(folder)
    path = folder / PLAN
    if path.is_file() and json.loads(path.read_text()) == plan:
        return True
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "shards").mkdir(parents=True)
    path.write_text(json.dumps(plan, sort_keys=True))
    return False


def shard_done(folder: Path, rank: int) -> bool:
    """True when `rank` finished its rows and Gram slot in this staging folder."""
    return _done_path(folder, rank).is_file()


def mark_done(folder: Path, rank: int) -> None:
    """Written after the rank's write_shard returned (the marker is the shard's commit)."""
    _done_path(folder, rank).write_text("ok\n")


def created(folder: Path) -> bool:
    return (Path(folder) / STORE / "zarr.json").is_file()


def dims(folder: Path) -> dict[str, int]:
    """{module: d_in} of the stored (canonical) modules."""
    return dict(zarr.open_group(str(Path(folder) / STORE), mode="r").attrs["dims"])


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

    @property
    def heldout(self) -> "HeldOutGrams":
        """The held-out rows' token Grams and counts (a subspace.FeatureSource without sample rows)."""
        if "heldout" not in self.attrs:
            raise OsrmError(f"{self.group.store}: these features predate held-out Grams (validation rows) — rerun "
                            "`osrm extract-features` to get diagnose's held-out numbers")
        return HeldOutGrams(self)

    def prefix(self, k: int) -> "FeatureCache | FeaturePrefix":
        """The cache as a run with osrm.k = k would have sampled it: the rows whose draw position is < k (in the
        stored, ascending order). Itself when every stored row qualifies (bit-identical to the full cache)."""
        draw = self.attrs.get("draw")
        if draw is None:
            if k >= int(self.attrs["k"]):
                return self
            raise OsrmError(f"{self.group.store}: this cache predates per-row draw order, so its first {k} sampled rows "
                            "are unknown — delete it and rerun `osrm extract-features`")
        keep = torch.tensor([i < k for i in draw], dtype=torch.bool)
        return self if bool(keep.all()) else FeaturePrefix(self, keep, k)


class HeldOutGrams:
    """Token Grams and counts of a cache's held-out rows (`attrs.heldout`: split and row count), summed over rank
    shards; no sample-mean rows (nothing is solved from them)."""

    def __init__(self, cache: FeatureCache):
        self.cache, self.aliases = cache, cache.aliases
        self.split, self.n_rows = cache.attrs["heldout"]["split"], int(cache.attrs["heldout"]["rows"])

    def gram(self, module: str) -> torch.Tensor:
        return _finite(torch.from_numpy(self.cache._get("heldout_gram", module)).sum(0), module, self.cache.group.store)

    def count(self, module: str) -> int:
        return int(self.cache._get("heldout_count", module).sum())

    def rows(self, module: str) -> torch.Tensor:
        raise OsrmError(f"{self.cache.group.store}: held-out features are Grams only, no sample rows")


class FeaturePrefix:
    """The sample-mean rows of the first k draws of a FeatureCache (subspace.FeatureSource). Token Grams and counts
    are sums over every stored row and cannot be cut: they raise (the config refuses such arms: osrm_pipeline/pipeline_config.py)."""

    def __init__(self, cache: FeatureCache, keep: torch.Tensor, k: int):
        self.cache, self.keep, self.k = cache, keep, k
        self.aliases = cache.aliases

    def rows(self, module: str) -> torch.Tensor:
        """(k' x d_in) float32: the stored rows drawn among the first k."""
        return self.cache.rows(module)[self.keep]

    def _whole(self, what: str):
        raise OsrmError(f"{self.cache.group.store}: the token {what} sums all {int(self.cache.attrs['k'])} sampled rows, "
                        f"it has no per-row prefix for osrm.k={self.k} — use the same osrm.k on every token-estimator arm")

    def gram(self, module: str) -> torch.Tensor:
        self._whole("Gram")

    def count(self, module: str) -> int:
        self._whole("count")


def _finite(t: torch.Tensor, module: str, where) -> torch.Tensor:
    if not torch.isfinite(t).all():
        raise OsrmError(f"{where}: features of '{module}' contain NaN/Inf — check the backbone dtype and rerun `osrm extract-features`")
    return t
