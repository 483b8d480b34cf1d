"""Load a backbone as a sequence classifier or a causal LM, plus its tokenizer, offline-aware."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import torch
from torch import nn

from osrm_core.backbones import BackboneSpec, resolve_source
from osrm_core.errors import OsrmError
from osrm_core.split_zip import cache_root


def _hub_error(spec: BackboneSpec, src: str, err: Exception) -> OsrmError:
    return OsrmError(
        f"backbone '{spec.name}': cannot load '{src}' ({type(err).__name__}); the model hub is unreachable "
        f"offline — download it elsewhere and set `source:` in configs/backbones/{spec.name}.yaml to that local folder"
    )


def gguf_cache_dir(src: str, gguf: str) -> Path:
    """Where a GGUF checkpoint is kept unpacked (fp32 safetensors + tokenizer), keyed by file path, size and mtime.

    OSRM_CACHE_DIR overrides the root (default ~/.cache/osrm)."""
    root = cache_root() / "gguf"
    f = (Path(src) / gguf).resolve()
    st = f.stat()
    return root / hashlib.sha256(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _unpack_gguf(src: str, gguf: str, folder: Path) -> None:
    """Dequantise once (about 22 s for SmolLM2-135M) and save as a plain transformers folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(src, gguf_file=gguf).save_pretrained(tmp)
    try:
        tmp.rename(folder)  # several ranks may race: the first rename wins, the others drop theirs
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def model_source(spec: BackboneSpec) -> str:
    """A folder or hub id transformers loads directly; GGUF checkpoints resolve to their unpacked cache.

    The weights fingerprint (manifests) still comes from the GGUF file itself."""
    src, gguf = resolve_source(spec)
    if not gguf:
        return src
    folder = gguf_cache_dir(src, gguf)
    if not (folder / "config.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        _unpack_gguf(src, gguf, folder)
    return str(folder)


def load_tokenizer(spec: BackboneSpec):
    """Tokenizer with a pad token, padded on the right.

    Decoders without a pad token reuse EOS for padding; the sequence-classification head then pools
    the rightmost non-pad token, which is the last real token because Llama-style tokenizers do not
    append EOS. Only encoders receive token_type_ids (Llama and T5 forwards have no use for them).
    """
    from transformers import AutoTokenizer

    src = model_source(spec)
    try:
        tok = AutoTokenizer.from_pretrained(src, trust_remote_code=spec.trust_remote_code)
    except OSError as err:
        raise _hub_error(spec, src, err) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    if spec.family != "encoder":
        tok.model_input_names = [n for n in tok.model_input_names if n != "token_type_ids"]
    return tok


def _align_special_tokens(spec: BackboneSpec, config) -> None:
    """Make the model's pad/eos ids those of the tokenizer, so classification heads pool the right token.

    Decoders pool the last token that is not `pad_token_id`; T5ForSequenceClassification pools the
    last `eos_token_id` (the tokenizer's EOS, or [SEP] for BERT-style tokenizers).
    """
    if spec.family == "encoder":
        if getattr(config, "pad_token_id", None) is None:
            config.pad_token_id = load_tokenizer(spec).pad_token_id
        return
    tok = load_tokenizer(spec)
    config.pad_token_id = tok.pad_token_id
    if spec.family == "encoder-decoder":
        eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if eos is None:
            raise OsrmError(f"backbone '{spec.name}': its tokenizer has neither an EOS nor a SEP token — T5 classification pools the EOS position")
        config.eos_token_id = eos


def load_classifier(spec: BackboneSpec, num_labels: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    """AutoModelForSequenceClassification with `num_labels` (1 = regression), eval mode, dropout as configured.

    A fresh head is initialised by transformers; callers seed torch before calling for a reproducible head.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    src = model_source(spec)
    problem = "regression" if num_labels == 1 else "single_label_classification"
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialised head" warnings are expected here
    try:
        config = AutoConfig.from_pretrained(src, trust_remote_code=spec.trust_remote_code)
        config.num_labels = num_labels
        config.problem_type = problem
        _align_special_tokens(spec, config)
        model = AutoModelForSequenceClassification.from_pretrained(
            src, config=config, dtype=dtype, trust_remote_code=spec.trust_remote_code
        )
    except OSError as err:
        raise _hub_error(spec, src, err) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.eval()


def load_causal_lm(spec: BackboneSpec, dtype: torch.dtype = torch.float32) -> nn.Module:
    """AutoModelForCausalLM (a generative task's model: no head to add), eval mode, pad id = the tokenizer's
    (its EOS when it has no pad token; padded positions are masked, so EOS keeps its meaning)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    src = model_source(spec)
    try:
        config = AutoConfig.from_pretrained(src, trust_remote_code=spec.trust_remote_code)
        config.pad_token_id = load_tokenizer(spec).pad_token_id
        model = AutoModelForCausalLM.from_pretrained(src, config=config, dtype=dtype, trust_remote_code=spec.trust_remote_code)
    except OSError as err:
        raise _hub_error(spec, src, err) from None
    return model.eval()


def skeleton(spec: BackboneSpec, auto_class, **fields) -> nn.Module:
    """The backbone as `auto_class` (a transformers Auto* model class) with config `fields` set, built on the meta
    device: its parameter names and shapes, no weights read."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_source(spec), trust_remote_code=spec.trust_remote_code)
    for key, value in fields.items():
        setattr(config, key, value)
    with torch.device("meta"):
        return auto_class.from_config(config, trust_remote_code=spec.trust_remote_code)


def head_module_names(model: nn.Module) -> list[str]:
    """Names of the task head modules (trained with, and saved in, each adapter).

    BERT's pooler (dense + tanh on [CLS]) belongs to the task head here, as RoBERTa's classification
    head holds its own dense layer: sentence-embedding checkpoints such as all-MiniLM ship an untrained
    pooler, and a frozen random pooler would starve the classifier.
    """
    names = [n for n in ("classifier", "score", "classification_head") if hasattr(model, n)]
    body = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if getattr(body, "pooler", None) is not None:
        names.append("pooler")
    if not names:
        raise OsrmError(f"{type(model).__name__}: no classification head found (expected classifier/score)")
    return names


def offline_env() -> None:
    """Never reach for a hub at run time (this project runs where there is none)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
