"""LoRA training step on the packaged MiniLM: fp32 vs bf16 autocast, same batch, same run (a ratio).

    .venv/bin/python benchmarks/bf16_cpu.py [--steps 5] [--batch 32] [--threads N]

Why: `finetune.bf16: auto` turns autocast on only for CUDA GPUs with bf16; on the 2-core CPU machine
this project is developed and tested on, bf16 autocast measured far slower than fp32 (the CPU has no
native bf16 matmul, so oneDNN emulates it). Rerun this on your CPU before turning `bf16: on`.
"""

from __future__ import annotations

import argparse
import time

import torch

from osrm_core.lora import attach_lora
from osrm_core.models import head_module_names, load_classifier, load_tokenizer, offline_env
from osrm_core.train import autocast
from osrm_pipeline.backbone_registry import load_spec


def step_time(model, batch, labels, opt, bf16: bool, steps: int) -> float:
    """Median-free mean seconds per optimiser step after one warm-up step."""
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        with autocast("cpu", bf16):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    offline_env()
    spec = load_spec("minilm")
    tok = load_tokenizer(spec)
    model = load_classifier(spec, 2)
    model = attach_lora(model, spec.target_suffixes("qv"), head_module_names(model), rank=8, alpha=16.0).train()
    text = "a quietly devastating film whose performances carry a script that keeps surprising you"
    batch = dict(tok([text] * a.batch, return_tensors="pt", padding=True))
    labels = torch.zeros(a.batch, dtype=torch.long)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    fp32 = step_time(model, batch, labels, opt, False, a.steps)
    bf16 = step_time(model, batch, labels, opt, True, a.steps)
    print(f"threads={torch.get_num_threads()} batch={a.batch} tokens/row={batch['input_ids'].shape[1]}")
    print(f"fp32: {fp32:.3f} s/step ({a.batch / fp32:.0f} ex/s)   bf16 autocast: {bf16:.3f} s/step ({a.batch / bf16:.0f} ex/s)")
    print(f"bf16 / fp32 time ratio: {bf16 / fp32:.2f}")


if __name__ == "__main__":
    main()
