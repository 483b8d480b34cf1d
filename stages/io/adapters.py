"""Read PEFT LoRA adapter folders (ours or anyone's): factors per module, scale, task head; write new ones.

Third-party adapters may set `use_rslora` (s = alpha/sqrt(r)) and per-module `rank_pattern` /
`alpha_pattern` (module m: r_m, alpha_m, s_m); the reader folds s_m / s into B, so that every consumer
(merges, evaluation, diagnostics) sees one scale per adapter and `scale * B @ A` is each module's update.
"""

from __future__ import annotations

import json
import re
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
        if self.config.get("use_dora"):
            raise OsrmError(f"{cfg_path}: use_dora is set — DoRA adapters are not plain LoRA updates; only LoRA can be merged")
        self.rank = int(self.config["r"])
        self.manifest = _read_json(self.folder / "manifest.json")

    @property
    def base_id(self) -> str | None:
        """Identity of the backbone it was trained on: our manifest's weights hash, else PEFT's base path."""
        backbone = (self.manifest or {}).get("backbone") or {}
        return backbone.get("weights") or self.config.get("base_model_name_or_path")

    @property
    def scale(self) -> float:
        """The adapter's scale s = alpha / r (alpha / sqrt(r) with use_rslora), PEFT's rule."""
        return self._scale(float(self.config["lora_alpha"]), self.rank)

    def _scale(self, alpha: float, r: int) -> float:
        return alpha / (r**0.5 if self.config.get("use_rslora") else r)

    def module_rank(self, module: str) -> int:
        """r_m: rank_pattern's entry matching `module` (PEFT's suffix rule), else r."""
        return int(_pattern(self.config.get("rank_pattern"), module, self.rank))

    def module_scale(self, module: str) -> float:
        """s_m = alpha_m / r_m (or / sqrt(r_m)), with alpha_pattern / rank_pattern applied as PEFT does."""
        alpha = float(_pattern(self.config.get("alpha_pattern"), module, self.config["lora_alpha"]))
        return self._scale(alpha, self.module_rank(module))

    def _tensor(self, key: str) -> torch.Tensor:
        t = self._file.get_tensor(key)
        if not torch.isfinite(t).all():
            raise OsrmError(f"{self.folder / WEIGHTS}: tensor {key} has NaN/Inf — retrain or replace this adapter")
        return t

    def factors(self, module: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(A: r_m x d_in, B: d_out x r_m) float32, B times s_m / s so that `scale * B @ A` is the update."""
        a = self._tensor(f"{PREFIX}{module}.lora_A.weight").float()
        b = self._tensor(f"{PREFIX}{module}.lora_B.weight").float()
        r_m = self.module_rank(module)
        if a.shape[0] != r_m or b.shape[1] != r_m:
            raise OsrmError(f"{self.folder / WEIGHTS}: {module} has rank {a.shape[0]} but {CONFIG} says {r_m} "
                            "(r / rank_pattern) — the adapter is inconsistent; re-save it with PEFT")
        s_m = self.module_scale(module)
        return (a, b) if s_m == self.scale else (a, b * (s_m / self.scale))

    def delta(self, module: str) -> torch.Tensor:
        """s * B @ A (d_out x d_in) float32."""
        a, b = self.factors(module)
        return self.scale * (b @ a)

    def head(self) -> dict[str, torch.Tensor]:
        """Non-LoRA tensors (the task head), keyed by base-model parameter name."""
        return {k[len(PREFIX):]: self._tensor(k) for k in self.keys if ".lora_" not in k}


def write_lora(folder: Path, factors: dict[str, tuple[torch.Tensor, torch.Tensor]], head: dict[str, torch.Tensor],
               template: dict, rank: int, alpha: float, rslora: bool = False) -> None:
    """Write a PEFT LoRA adapter: factors {module: (A r_m x d_in, B d_out x r_m)}, head tensors, config from
    `template`. Every module's update is s B A with ONE scale s = alpha / r (alpha / sqrt(r) with `rslora`):
    a module whose rank r_m differs from `rank` gets rank_pattern r_m and alpha_pattern s r_m (s sqrt(r_m)),
    so that PEFT and `Adapter` give it the same s."""
    tensors, rank_pattern, alpha_pattern = {}, {}, {}
    scale = alpha / (rank**0.5 if rslora else rank)
    for module, (a, b) in factors.items():
        tensors[f"{PREFIX}{module}.lora_A.weight"] = a.contiguous()
        tensors[f"{PREFIX}{module}.lora_B.weight"] = b.contiguous()
        r_m = int(a.shape[0])
        if r_m != rank:
            rank_pattern[module], alpha_pattern[module] = r_m, scale * (r_m**0.5 if rslora else r_m)
    for name, t in head.items():
        tensors[f"{PREFIX}{name}"] = t.contiguous()
    cfg = {**template, "r": rank, "lora_alpha": alpha, "use_rslora": rslora, "rank_pattern": rank_pattern,
           "alpha_pattern": alpha_pattern}
    save_file(tensors, folder / WEIGHTS, metadata={"format": "pt"})
    (folder / CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def _pattern(patterns: dict | None, module: str, default):
    """PEFT's pattern rule (peft.utils.other.get_pattern_key): the first key that matches the end of the
    module name at a '.' boundary, as a regex; `default` if none does."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


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
