"""Load a backbone as a sequence classifier plus its tokenizer, offline-aware."""

from __future__ import annotations

import os

import torch
from torch import nn

from osrm_core.backbones import BackboneSpec, resolve_source
from osrm_core.errors import OsrmError


def _hub_error(spec: BackboneSpec, src: str, err: Exception) -> OsrmError:
    return OsrmError(
        f"backbone '{spec.name}': cannot load '{src}' ({type(err).__name__}); the model hub is unreachable "
        f"offline — download it elsewhere and set `source:` in configs/backbones/{spec.name}.yaml to that local folder"
    )


def load_tokenizer(spec: BackboneSpec):
    """Tokenizer with a pad token (decoders reuse EOS for padding, padded on the right)."""
    from transformers import AutoTokenizer

    src, gguf = resolve_source(spec)
    kwargs = {"gguf_file": gguf} if gguf else {}
    try:
        tok = AutoTokenizer.from_pretrained(src, trust_remote_code=spec.trust_remote_code, **kwargs)
    except OSError as err:
        raise _hub_error(spec, src, err) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_classifier(spec: BackboneSpec, num_labels: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    """AutoModelForSequenceClassification with `num_labels` (1 = regression), eval mode, dropout as configured.

    A fresh head is initialised by transformers; callers seed torch before calling for a reproducible head.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    src, gguf = resolve_source(spec)
    kwargs = {"gguf_file": gguf} if gguf else {}
    problem = "regression" if num_labels == 1 else "single_label_classification"
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialised head" warnings are expected here
    try:
        config = AutoConfig.from_pretrained(src, trust_remote_code=spec.trust_remote_code, **kwargs)
        config.num_labels = num_labels
        config.problem_type = problem
        if getattr(config, "pad_token_id", None) is None:
            tok = load_tokenizer(spec)
            config.pad_token_id = tok.pad_token_id
        model = AutoModelForSequenceClassification.from_pretrained(
            src, config=config, dtype=dtype, trust_remote_code=spec.trust_remote_code, **kwargs
        )
    except OSError as err:
        raise _hub_error(spec, src, err) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if gguf:  # a dequantised GGUF must not keep its quantiser, or save_pretrained/PEFT refuse it
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model.eval()


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
