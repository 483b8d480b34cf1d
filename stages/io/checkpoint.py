"""Resumable fine-tuning checkpoints: tensors in safetensors, optimiser state via torch.save/weights_only load."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from osrm_core.train import LoopState
from stages.io.atomic import atomic_dir, recover


def save(folder: Path, config_hash: str, state: LoopState, trainable: dict, best: dict | None, optimizer, scheduler) -> None:
    """Replace the checkpoint atomically (a kill during the write leaves the previous one)."""
    with atomic_dir(folder) as tmp:
        save_file({k: v.contiguous() for k, v in trainable.items()}, tmp / "trainable.safetensors")
        if best is not None:
            save_file({k: v.contiguous() for k, v in best.items()}, tmp / "best.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state()}, tmp / "optim.pt")
        (tmp / "state.json").write_text(json.dumps({"config_hash": config_hash, "loop": state.to_dict()}))


def load(folder: Path, config_hash: str):
    """(LoopState, trainable, best|None, optim dict) or None when there is no matching, readable checkpoint.

    A checkpoint is replaced atomically, so it is never partial; one that is unreadable anyway (disk
    damage) is reported on stderr and ignored: training restarts from step 0 rather than from garbage.
    """
    recover(folder)
    meta = folder / "state.json"
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text())
        if data.get("config_hash") != config_hash:
            return None  # another experiment's checkpoint: never resume into a different config
        best = load_file(folder / "best.safetensors") if (folder / "best.safetensors").is_file() else None
        optim = torch.load(folder / "optim.pt", weights_only=True)
        return LoopState(**data["loop"]), load_file(folder / "trainable.safetensors"), best, optim
    except Exception as err:  # noqa: BLE001 - any damage means: do not resume from it
        print(f"warning: checkpoint {folder} is unreadable ({type(err).__name__}); starting from step 0", file=sys.stderr)
        return None


class Store:
    """The checkpoint folder of one fine-tuning run, as osrm_pipeline.finetune.train_plain uses it."""

    def __init__(self, folder: Path, resume: bool = True):
        self.folder, self.resume = Path(folder), resume

    def load(self, config_hash: str):
        return load(self.folder, config_hash)

    def save(self, config_hash: str, state: LoopState, trainable: dict, best: dict | None, optimizer, scheduler) -> None:
        save(self.folder, config_hash, state, trainable, best, optimizer, scheduler)
