"""Shared fixtures: tiny random-initialised backbones built from a config (no weights), tiny pipelines."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
import typer
import typer.testing
import yaml

os.environ.setdefault("OSRM_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_TASKS = ["movie_sentiment", "question_type", "sentiment_score"]


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: needs a real (local) SLURM")


def minilm_dir() -> Path:
    from osrm_core.backbones import resolve_source
    from osrm_pipeline.backbone_registry import load_spec

    return Path(resolve_source(load_spec("minilm"))[0])


def save_tiny(folder: Path, family: str = "encoder") -> dict:
    """A tiny random model of `family` saved with MiniLM's tokenizer; returns its backbone spec dict."""
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel, T5Config, T5Model

    torch.manual_seed(0)
    if family == "encoder":
        model = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=128))
        targets = {"q": "query", "k": "key", "v": "value", "o": "attention.output.dense"}
    elif family == "decoder":
        model = LlamaModel(LlamaConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       num_key_value_heads=1, intermediate_size=64, pad_token_id=0))
        targets = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"}
    else:
        model = T5Model(T5Config(vocab_size=30522, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                                 decoder_start_token_id=0, pad_token_id=0))
        targets = {"q": "q", "k": "k", "v": "v", "o": "o"}
    model.save_pretrained(folder)
    src = minilm_dir()
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / f, folder / f)
    return {"name": f"tiny-{family}", "family": family, "source": str(folder), "targets": targets}


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """Path of a backbone YAML for a tiny random BERT."""
    root = tmp_path_factory.mktemp("tiny-bert")
    spec = save_tiny(root / "model", "encoder")
    path = root / "tiny-bert.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def tiny_pipeline(workdir: Path, backbone: Path, **overrides) -> dict:
    cfg = {
        "workdir": str(workdir), "backbone": str(backbone), "suite": "default", "tasks": TINY_TASKS,
        "data": {"max_train": 48, "max_eval": 24, "max_length": 32},
        "lora": {"rank": 4, "alpha": 8, "blocks": "qv"},
        "osrm": {"k": 16, "batch_size": 16},
        "finetune": {"epochs": 1, "lr": 0.005, "batch_size": 16, "checkpoint_every": 0, "bf16": "off", "log_every": 1},
        "merge": {"methods": {"weight_average": {}, "task_arithmetic": {"lambda": 0.5}, "ties": {"density": 0.5}}},
        "evaluate": {"split": "validation", "batch_size": 32},
    }
    for key, value in overrides.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    return cfg


@pytest.fixture
def tiny_config(tmp_path, tiny_backbone) -> Path:
    """A pipeline.yaml on the tiny BERT with 3 default-suite tasks and a fresh workdir."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tiny_pipeline(tmp_path / "runs", tiny_backbone)))
    return path


class Cli:
    """Runs `osrm ...` in-process; returns the click Result (exit_code, stdout, stderr)."""

    def __init__(self):
        from stages.cli import app

        self.app = app
        self.runner = typer.testing.CliRunner()

    def __call__(self, *args: str, ok: bool = True):
        orig = typer.testing._get_command
        typer.testing._get_command = lambda a: a if not isinstance(a, typer.Typer) else orig(a)
        try:
            res = self.runner.invoke(self.app, [str(a) for a in args])
        finally:
            typer.testing._get_command = orig
        if ok and res.exit_code != 0:
            raise AssertionError(f"osrm {' '.join(map(str, args))} exited {res.exit_code}:\n{res.output}\n{res.exception!r}")
        return res


@pytest.fixture
def cli() -> Cli:
    return Cli()


def run_upstream(cli: Cli, config: Path, tasks: list[str], arms: tuple[str, ...] = ("lora", "osrm")) -> None:
    """extract-features and build-subspace for every task, then finetune every task for each init."""
    for t in tasks:
        cli("extract-features", "-c", config, "--task", t)
    for t in tasks:
        cli("build-subspace", "-c", config, "--task", t)
    for init in arms:
        for t in tasks:
            cli("finetune", "-c", config, "--task", t, "--arm", init)
