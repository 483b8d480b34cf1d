"""A tiny Llama built from a config, a word-level tokenizer built in memory, and a tiny own generative suite
(JSON lines): what the generative tests run on, in seconds, without any download."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
import yaml

POLARITY = {"good": "positive", "great": "positive", "fine": "positive", "bad": "negative", "awful": "negative",
            "poor": "negative"}
TOPICS = {"ball": "sport", "goal": "sport", "bread": "food", "soup": "food", "song": "music", "drum": "music"}
NOUNS = ["film", "book", "meal", "show", "game", "trip"]
COLOURS = ["red", "blue", "green", "black", "white", "gold"]
WORDS = sorted({*POLARITY, *POLARITY.values(), *TOPICS, *TOPICS.values(), *NOUNS, *COLOURS,
                "review", "sentiment", "topic", "text", "colour", "of", "the", "is", "very", "a", "user", "assistant", ":", "?"})
CHAT = ("{% for m in messages %}<s> user : {{ m['content'] }} </s>{% endfor %}"
        "{% if add_generation_prompt %} assistant :{% endif %}")


def tiny_tokenizer(pad: bool = True):
    """Word-level fast tokenizer: <s> prefix (BOS), </s> EOS, <pad> unless pad=False, a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"] + (["<pad>"] if pad else [])
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>" if pad else None)
    tok.chat_template = CHAT
    return tok


def save_tiny_llama(folder: Path, pad: bool = True) -> dict:
    """A tiny random LlamaForCausalLM + tokenizer in `folder`; returns its backbone spec dict."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer(pad)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=1, intermediate_size=64, max_position_embeddings=64,
                                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return {"name": "tiny-llama", "family": "decoder", "source": str(folder),
            "targets": {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"}}


def _rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        adjective, thing, noun, colour = rng.choice(sorted(POLARITY)), rng.choice(sorted(TOPICS)), rng.choice(NOUNS), rng.choice(COLOURS)
        very = "very " if rng.random() < 0.5 else ""  # prompts of two lengths: batches are padded
        rows.append({"review": f"the {noun} is {very}{adjective}", "polarity": POLARITY[adjective], "text": f"a {colour} {thing}",
                     "topic": TOPICS[thing], "thing": f"the {colour} {noun}", "colour": colour})
    return rows


def write_data(folder: Path, sizes=(("train", 48), ("validation", 16), ("test", 16))) -> Path:
    """data.jsonl with a split column: every task reads its own columns of the same rows."""
    rng, lines = random.Random(0), []
    for split, n in sizes:
        lines += [json.dumps({**row, "split": split}) for row in _rows(rng, n)]
    path = folder / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


TASKS = [
    {"name": "sentiment", "loader": "files", "path": "data.jsonl",
     "generate": {"prompt": "review : {review} sentiment :", "target": "polarity", "choices": ["negative", "positive"]},
     "metric": "accuracy_f1"},
    {"name": "topic", "loader": "files", "path": "data.jsonl",
     "generate": {"prompt": "text : {text} topic :", "target": "topic", "choices": ["food", "music", "sport"], "chat_template": True},
     "metric": "matthews"},
    {"name": "colour", "loader": "files", "path": "data.jsonl",
     "generate": {"prompt": "colour of {thing} ?", "target": "colour"}, "metric": "token_f1"},
]


def write_project(root: Path, tasks=TASKS, pad: bool = True, **overrides) -> Path:
    """A pipeline.yaml on the tiny Llama with the inline generative suite; returns its path."""
    from tests.conftest import tiny_pipeline

    root.mkdir(parents=True, exist_ok=True)
    write_data(root)
    backbone = root / "tiny-llama.yaml"
    backbone.write_text(yaml.safe_dump(save_tiny_llama(root / "model", pad)))
    sections = {"data": {"max_train": 48, "max_eval": 16, "max_length": 24},
                "finetune": {"epochs": 2, "lr": 0.02, "batch_size": 8, "checkpoint_every": 0, "bf16": "off", "log_every": 1},
                "evaluate": {"split": "validation", "batch_size": 8}}
    for key, value in overrides.items():
        sections[key] = {**sections[key], **value} if key in sections else value
    cfg = tiny_pipeline(root / "runs", backbone, suite={"suite": "gen", "tasks": tasks}, tasks=[t["name"] for t in tasks], **sections)
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
