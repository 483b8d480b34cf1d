"""Rank/world helpers for data-parallel stages (torchrun / the deepspeed launcher / srun set the env).

The split helpers are pure functions of (n, rank, world); the process-group helpers are thin wrappers
around torch.distributed with the gloo backend on CPU (NCCL on CUDA).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """This process's place: rank in [0, size), local_rank on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env(env: dict | None = None) -> World:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun, the deepspeed launcher and configs/slurm's srun launch
    set them; one process when WORLD_SIZE is absent (a bare SLURM task never turns data-parallel by itself)."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        return World(int(env.get("RANK", 0)), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    return World()


def block(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous block of n items; blocks have ceil(n/world) items (the last fewer).

    Matches stages/io/feature_store's chunking: rank r owns rows [r*ceil(n/W), (r+1)*ceil(n/W)).
    """
    size = -(-n // world)
    start = min(n, rank * size)
    return start, min(n, start + size)


def rank_order(order: Sequence[int], batch_size: int, rank: int, world: int) -> list[int]:
    """This rank's rows of an epoch, in step order: global batch s is order[s*B*W:(s+1)*B*W] (B = per-rank
    batch), wrapped around to a multiple of W rows as torch's DistributedSampler does, and rank r takes
    the r-th equal part of every global batch. With world=1 this is `order` itself; chunking the result
    by `batch_size` gives the rank's micro-batches (the last one may be smaller, equal across ranks).
    """
    order = list(order)
    if world == 1:
        return order
    pad = (-len(order)) % world
    order = order + (order * (pad // max(1, len(order)) + 1))[:pad]
    out = []
    for s in range(0, len(order), batch_size * world):
        g = order[s:s + batch_size * world]
        part = len(g) // world
        out.extend(g[rank * part:(rank + 1) * part])
    return out


def steps_per_epoch(n: int, batch_size: int, world: int) -> int:
    """Optimizer micro-steps per epoch for n rows, per-rank batch B, W ranks."""
    padded = n + (-n) % world
    return -(-padded // (batch_size * world))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_env(world: World) -> None:
    """Single-process defaults DeepSpeed needs (RANK=0, WORLD_SIZE=1, a free MASTER_PORT)."""
    os.environ.setdefault("RANK", str(world.rank))
    os.environ.setdefault("LOCAL_RANK", str(world.local_rank))
    os.environ.setdefault("WORLD_SIZE", str(world.size))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))


def init(world: World) -> bool:
    """Join the process group when world.size > 1 (gloo on CPU); True when this call created it."""
    import torch
    import torch.distributed as dist

    if world.size == 1 or dist.is_initialized():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(backend, rank=world.rank, world_size=world.size)
    return True


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def destroy() -> None:
    """Leave the process group. DeepSpeed keeps its own handle to it (deepspeed.comm's `cdb`), which would
    still claim "initialized" and make the next DeepSpeed run in this process (`osrm run`: task after task)
    use the destroyed group: destroy through DeepSpeed and drop the handle when DeepSpeed is loaded."""
    import sys

    import torch.distributed as dist

    ds_comm = sys.modules.get("deepspeed.comm.comm")
    if dist.is_initialized():
        if ds_comm is not None and ds_comm.cdb is not None:
            ds_comm.destroy_process_group()
        else:
            dist.destroy_process_group()
    if ds_comm is not None:
        ds_comm.cdb = None


def gather_objects(obj, world: World) -> list:
    """Every rank's `obj`, in rank order (on every rank); [obj] for one process."""
    import torch.distributed as dist

    if world.size == 1 or not dist.is_initialized():
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out
