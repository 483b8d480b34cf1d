"""Read PEFT LoRA adapter folders (ours or anyone's): factors per module, scale, task head; write new ones."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from osrm_core.errors import OsrmError
from osrm_core.lora import PEFT_PREFIX
from stages.io.tensors import save_file

PREFIX = PEFT_PREFIX
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


class Adapter:
    """A LoRA adapter on disk. Tensors are read lazily, one module at a time (streaming merges)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        cfg_path, w_path = self.folder / CONFIG, self.folder / WEIGHTS
        if not cfg_path.is_file() or not w_path.is_file():
            raise OsrmError(f"{self.folder} is not a PEFT adapter folder (needs {CONFIG} and {WEIGHTS}) — run `osrm finetune` or fix the path")
        self.config = _read_json(cfg_path)
        try:
            self._file = safe_open(str(w_path), "pt")
            self.keys = list(self._file.keys())
        except Exception as err:
            raise OsrmError(f"{w_path} is damaged or unreadable ({type(err).__name__}) — re-create the adapter") from None
        if self.config.get("peft_type") != "LORA":
            raise OsrmError(f"{cfg_path}: peft_type {self.config.get('peft_type')!r} is not LORA — only LoRA adapters can be merged")
        self.modules = sorted({k[len(PREFIX):].split(".lora_A.")[0] for k in self.keys if ".lora_A." in k})
        if not isinstance(self.config.get("r"), int) or "lora_alpha" not in self.config:
            raise OsrmError(f"{cfg_path}: no integer 'r' / 'lora_alpha' — not a LoRA adapter config; re-create the adapter")
        self.rank = int(self.config["r"])
        self.manifest = _read_json(self.folder / "manifest.json")

    @property
    def base_id(self) -> str | None:
        """Identity of the backbone it was trained on: our manifest's weights hash, else PEFT's base path."""
        backbone = (self.manifest or {}).get("backbone") or {}
        return backbone.get("weights") or self.config.get("base_model_name_or_path")

    @property
    def scale(self) -> float:
        alpha, r = float(self.config["lora_alpha"]), self.rank
        return alpha / (r**0.5 if self.config.get("use_rslora") else r)

    def _tensor(self, key: str) -> torch.Tensor:
        t = self._file.get_tensor(key)
        if not torch.isfinite(t).all():
            raise OsrmError(f"{self.folder / WEIGHTS}: tensor {key} has NaN/Inf — retrain or replace this adapter")
        return t

    def factors(self, module: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(A: r x d_in, B: d_out x r) float32."""
        a = self._tensor(f"{PREFIX}{module}.lora_A.weight").float()
        b = self._tensor(f"{PREFIX}{module}.lora_B.weight").float()
        return a, b

    def delta(self, module: str) -> torch.Tensor:
        """s * B @ A (d_out x d_in) float32."""
        a, b = self.factors(module)
        return self.scale * (b @ a)

    def head(self) -> dict[str, torch.Tensor]:
        """Non-LoRA tensors (the task head), keyed by base-model parameter name."""
        return {k[len(PREFIX):]: self._tensor(k) for k in self.keys if ".lora_" not in k}


def write_lora(folder: Path, factors: dict[str, tuple[torch.Tensor, torch.Tensor]], head: dict[str, torch.Tensor],
               template: dict, rank: int, alpha: float) -> None:
    """Write a PEFT LoRA adapter: factors {module: (A r x d_in, B d_out x r)}, head tensors, config from `template`."""
    tensors = {}
    for module, (a, b) in factors.items():
        tensors[f"{PREFIX}{module}.lora_A.weight"] = a.contiguous()
        tensors[f"{PREFIX}{module}.lora_B.weight"] = b.contiguous()
    for name, t in head.items():
        tensors[f"{PREFIX}{name}"] = t.contiguous()
    cfg = {**template, "r": rank, "lora_alpha": alpha, "use_rslora": False, "rank_pattern": {}, "alpha_pattern": {}}
    save_file(tensors, folder / WEIGHTS, metadata={"format": "pt"})
    (folder / CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OsrmError(f"{path} is damaged (not JSON) — re-create the adapter") from None


def individual_delta(adapter: Adapter) -> dict[str, torch.Tensor]:
    """{module: s B A} for every module of one adapter (its dense update)."""
    return {m: adapter.delta(m) for m in adapter.modules}


def head_num_labels(head: dict[str, torch.Tensor], where) -> int:
    """Number of labels of a head: rows of its output projection (out_proj > classifier > score)."""
    for suffix in ("out_proj.weight", "classifier.weight", "score.weight"):
        for k, t in head.items():
            if k.endswith(suffix) and t.dim() == 2:
                return int(t.shape[0])
    raise OsrmError(f"{where}: no task head in this adapter (classifier/score) — it must be saved with modules_to_save")
