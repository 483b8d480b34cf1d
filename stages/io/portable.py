"""Adapter configs that load on any machine: no absolute path of the training machine in
`base_model_name_or_path`, and a correct `rank_pattern`/`alpha_pattern` when modules have different ranks."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from osrm_core.backbones import HUB_ID, BackboneSpec
from stages.io.adapters import CONFIG


# An adapter without head tensors (a merge: heads are never merged) must not name modules_to_save nor the SEQ_CLS
# task type: PEFT would then wrap the classifier and fail on its missing tensors. Loaded as a plain PeftModel, it
# uses the head already in the base model (load the task's head first: docs/serving.md).
HEADLESS = {"task_type": None, "modules_to_save": None}
#: PEFT task types whose adapters carry no head: a merge of them keeps the type (a CAUSAL_LM merge loads as
#: PeftModelForCausalLM and generates)
HEADLESS_TASK_TYPES = frozenset({"CAUSAL_LM"})


def headless(template: dict) -> dict:
    """Config fields of a head-less adapter made from adapters with config `template`: HEADLESS, keeping a task
    type that has no head (CAUSAL_LM)."""
    kept = template.get("task_type") if template.get("task_type") in HEADLESS_TASK_TYPES else None
    return {**HEADLESS, "task_type": kept}


def portable_base(spec: BackboneSpec) -> str:
    """What adapters record as their base model: the spec's hub id or declared source ('package:<module>/<dir>',
    'parts:<dist>-{001..005}/<dir>', a relative folder) as written in its YAML; the backbone's name when the source is an absolute path."""
    src = spec.source
    if Path(src).expanduser().is_absolute() or src.startswith("~"):
        return spec.name
    return src if (HUB_ID.match(src) or src.startswith(("package:", "parts:", "."))) else spec.name


def rank_fields(factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """PEFT config fields for factors {module: (A r_m x d_in, B d_out x r_m)} whose scale is folded in
    (scale 1 everywhere: lora_alpha = r per module). Modules whose rank differs from the first one's are
    listed in rank_pattern/alpha_pattern under their full name (PEFT matches `(.*\\.)?<key>$`)."""
    ranks = {m: int(a.shape[0]) for m, (a, _) in factors.items()}
    r = next(iter(ranks.values()))
    pattern = {m: k for m, k in ranks.items() if k != r}
    return {"r": r, "lora_alpha": float(r), "use_rslora": False, "rank_pattern": pattern,
            "alpha_pattern": {m: float(k) for m, k in pattern.items()}}


def patch_adapter_config(folder: Path, **fields) -> None:
    """Rewrite `folder`/adapter_config.json with `fields` set (inside the atomic folder, before sealing)."""
    path = Path(folder) / CONFIG
    cfg = {**json.loads(path.read_text()), **fields}
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
