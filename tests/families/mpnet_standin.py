"""A tiny stand-in for the packaged all-mpnet-base-v2 in its shipped format: a random MPNet (hidden 32) with an
MPNet tokenizer on MiniLM's vocabulary, saved, zipped under one folder and split into parts that are laid out as
installed distributions (a folder ``<name>_00N/input/<file>.zip.00N`` plus its ``.dist-info``) on a site folder."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import torch

from tests.conftest import minilm_dir

PREFIX = "tiny-mpnet-part-"
INNER = "tiny-mpnet"


def save_tiny_mpnet(folder: Path) -> None:
    """A random 2-layer MPNet (hidden 32, 128 positions after the padding offset) and its tokenizer in `folder`."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    words = [w for w in (minilm_dir() / "vocab.txt").read_text().splitlines() if w != "[UNK]"]
    vocab = ["<s>", "<pad>", "</s>", "[UNK]", *words, "<mask>"]  # all-mpnet-base-v2's special-token layout
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = MPNetTokenizer(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    model = MPNetModel(MPNetConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=130, pad_token_id=1))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def zip_bytes(folder: Path, inner: str = INNER) -> bytes:
    """`folder` zipped under `inner/`, plus an onnx/ export and a desktop.ini that the unpack must skip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            zf.write(f, f"{inner}/{f.relative_to(folder)}")
        zf.writestr(f"{inner}/onnx/model.onnx", b"not used")
        zf.writestr(f"{inner}/desktop.ini", b"[.ShellClassInfo]")
    return buf.getvalue()


def install_parts(site: Path, data: bytes, n_parts: int = 3, prefix: str = PREFIX) -> list[str]:
    """Split `data` into `n_parts` distributions `<prefix>001`... under `site` (a sys.path entry); their names."""
    cut = [len(data) * i // n_parts for i in range(n_parts + 1)]
    names = []
    for i in range(1, n_parts + 1):
        name = f"{prefix}{i:03d}"
        pkg, info = f"{prefix}{i:03d}".replace("part-", "part_"), f"{name.replace('-', '_')}-0.0.1.dist-info"
        rel = f"{pkg}/input/model.zip.{i:03d}"
        (site / rel).parent.mkdir(parents=True)
        (site / rel).write_bytes(data[cut[i - 1]:cut[i]])
        (site / pkg / "__init__.py").write_text("")
        (site / info).mkdir()
        (site / info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
        (site / info / "RECORD").write_text(f"{pkg}/__init__.py,,\n{rel},,\n{info}/METADATA,,\n{info}/RECORD,,\n")
        names.append(name)
    return names


def standin_spec(n_parts: int = 3) -> dict:
    """Backbone YAML fields for the installed stand-in parts (targets inferred from model_type mpnet)."""
    return {"name": "tiny-mpnet", "family": "encoder", "source": f"parts:{PREFIX}{{001..{n_parts:03d}}}/{INNER}"}
