"""A backbone as a value (:class:`BackboneSpec`: where its weights are, which linear layers each block letter
targets) and what is read from its model folder: the source, the targets and family from config.json, checks,
the embeddable length, a weights fingerprint. Without explicit ``targets`` the LoRA target modules per block
letter come from :data:`TARGETS_BY_MODEL_TYPE` (config.json's ``model_type``); docs/own_tasks.md.
Finding a spec by the config's ``backbone:`` name is the pipeline's (osrm_pipeline/backbone_registry.py).
"""

from __future__ import annotations

import glob
import importlib.util
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from osrm_core.errors import OsrmError
from osrm_core.split_zip import unpacked_folder

Family = Literal["encoder", "decoder", "encoder-decoder"]


class BackboneSpec(BaseModel):
    """A backbone: where its weights are and which linear layers each block letter targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    family: Family
    source: str = Field(description="Local folder, 'package:<module>/<subdir>', 'parts:<dist>-{001..005}/<folder in "
                        "zip>' (a zip split across installed distributions: osrm_core/split_zip.py) or a hub id.")
    targets: dict[Literal["q", "k", "v", "o"], str] | None = Field(
        None, description="Block letter -> module-name suffix; empty = from the model's model_type (TARGETS_BY_MODEL_TYPE).")
    gguf_file: str | None = Field(None, description="GGUF file name (glob) inside the source folder.")
    trust_remote_code: bool = Field(False, description="Run code shipped with the checkpoint (off unless set).")

    def target_suffixes(self, blocks: str) -> list[str]:
        """Module-name suffixes for block letters, e.g. 'qv' -> ['query', 'value']."""
        if self.targets is None:
            raise OsrmError(f"backbone '{self.name}': no targets — pass it through infer_spec(), which reads them from "
                            "config.json")
        missing = [b for b in blocks if b not in self.targets]
        if missing:
            raise OsrmError(f"lora.blocks: backbone '{self.name}' defines no block {missing} — use letters from {sorted(self.targets)}")
        return [self.targets[b] for b in blocks]


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_source(spec: BackboneSpec) -> tuple[str, str | None]:
    """(folder or hub id, gguf file name or None). Packages resolve to their installed folder; split-zip parts to
    their unpacked folder in the cache (unpacked on first use)."""
    src = spec.source
    if src.startswith("parts:"):
        src = str(unpacked_folder(spec.name, src[len("parts:"):]))
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


_POSITION_OFFSET = {"roberta", "xlm-roberta", "camembert", "mpnet"}  # positions start after padding_idx (pad_token_id + 1)


def max_tokens(spec: BackboneSpec) -> int | None:
    """The longest input, in tokens, a local backbone can embed: config.json's max_position_embeddings (less the
    RoBERTa family's and MPNet's padding offset); None without that field (relative positions: T5), a config.json or a folder."""
    import json

    src, gguf = resolve_source(spec)
    path = Path(src) / "config.json"
    if gguf or not path.is_file():
        return None
    config = json.loads(path.read_text())
    limit = config.get("max_position_embeddings")
    if not isinstance(limit, int):
        return None
    if config.get("model_type") in _POSITION_OFFSET:
        limit -= int(config.get("pad_token_id") or 0) + 1
    return limit


def check_max_length(spec: BackboneSpec, max_length: int) -> None:
    """One-line OsrmError when data.max_length is longer than the backbone can embed (a long input would then
    crash the forward pass instead of being truncated)."""
    limit = max_tokens(spec)
    if limit is not None and max_length > limit:
        raise OsrmError(f"data.max_length is {max_length} but backbone '{spec.name}' embeds at most {limit} tokens "
                        f"(max_position_embeddings in its config.json) — set data.max_length to {limit} or less")


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


def infer_spec(spec: BackboneSpec, family: Family | None = None) -> BackboneSpec:
    """``spec`` with family (unless given) and targets read from the model's config.json."""
    config = model_config(spec)
    return spec.model_copy(update={"family": family or family_of(config), "targets": targets_for(spec.name, config)})


_BERT = {"q": "query", "k": "key", "v": "value", "o": "attention.output.dense"}
_LLAMA = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"}
#: config.json model_type -> block letter -> module-name suffix (checked against built models in tests)
TARGETS_BY_MODEL_TYPE: dict[str, dict[str, str]] = {
    "bert": _BERT, "roberta": _BERT, "xlm-roberta": _BERT, "electra": _BERT,
    "deberta-v2": {"q": "query_proj", "k": "key_proj", "v": "value_proj", "o": "attention.output.dense"},
    "llama": _LLAMA, "mistral": _LLAMA, "qwen2": _LLAMA, "gemma": _LLAMA, "gemma2": _LLAMA,
    "t5": {"q": "q", "k": "k", "v": "v", "o": "o"},  # SelfAttention.q and EncDecAttention.q alike
    "mpnet": {"q": "attn.q", "k": "attn.k", "v": "attn.v", "o": "attn.o"},  # MPNetAttention.attn (MPNetSelfAttention)
}
_DECODER_TYPES = {"llama", "mistral", "qwen2", "gemma", "gemma2"}


def model_config(spec: BackboneSpec):
    """The transformers config of a backbone's folder or hub id (one-line OsrmError when unreadable)."""
    from transformers import AutoConfig

    src, gguf = resolve_source(spec)
    if gguf:
        raise OsrmError(f"backbone '{spec.name}': a GGUF backbone needs explicit `targets: {{q: ..., v: ...}}` in its YAML")
    if Path(src).is_dir() and not (Path(src) / "config.json").is_file():
        raise OsrmError(f"backbone '{spec.name}': {src} has no config.json — point at a save_pretrained() folder")
    try:
        return AutoConfig.from_pretrained(src, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as err:
        reason = " ".join(str(err).split())[:160]
        raise OsrmError(f"backbone '{spec.name}': cannot read the config of {src} ({reason}) — "
                        "give a local model folder (save_pretrained) or a reachable hub id") from None


def family_of(config) -> Family:
    """encoder-decoder (T5-like), decoder (causal LMs) or encoder."""
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    causal = any(a.endswith("ForCausalLM") for a in getattr(config, "architectures", None) or [])
    return "decoder" if config.model_type in _DECODER_TYPES or causal else "encoder"


def linear_layer_names(config) -> list[str]:
    """Distinct names (after the last layer index) of the nn.Linear modules of a model, built on the meta device."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    names = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            parts = name.split(".")
            last_index = max((i for i, p in enumerate(parts) if p.isdigit()), default=-1)
            names.append(".".join(parts[last_index + 1:]))
    return list(dict.fromkeys(names))


def targets_for(name: str, config) -> dict[str, str]:
    """Block letter -> suffix for ``config.model_type``; unknown types list the model's linear layers."""
    targets = TARGETS_BY_MODEL_TYPE.get(config.model_type)
    if targets is None:
        raise OsrmError(f"backbone '{name}': no LoRA targets known for model_type '{config.model_type}'; its linear layers are "
                        f"{linear_layer_names(config)} — write a backbone YAML with its `source` and "
                        "`targets: {q: <suffix>, k: ..., v: <suffix>, o: ...}` picked from those")
    return dict(targets)
