"""Per-GPU memory plan for LoRA fine-tuning under DeepSpeed ZeRO-2 / ZeRO-3, from a model's shapes.

    python benchmarks/memory_plan.py                      # Llama-3-8B, q+v r=8, markdown table
    python benchmarks/memory_plan.py --rank 8 --blocks qkv --micro-batch 8 --seq 128

The model is built on the meta device from its config (exact parameter shapes, no weights, no hub):
the built-in Llama-3-8B config is the published one (hidden 4096, 32 layers, 32 heads / 8 KV heads,
MLP 14336, vocab 128256). Bytes per element: bf16 weights/grads/activations (2), fp32 master copy
and two Adam moments for trainable tensors (4 + 8).

  frozen base   ZeRO-2: 2*P_base on every GPU          ZeRO-3: 2*P_base/W + gathered working set
  trainable     ZeRO-2: 2*P_t + (2 + 12)*P_t/W          ZeRO-3: (2 + 2 + 12)*P_t/W
  activations   per layer b*L*(4h + 2h_kv + 4i) bf16 elements kept for backward (SDPA/flash attention,
                no L^2 term); with gradient checkpointing b*L*h per layer plus one layer's full set.
The ZeRO-3 working set is the largest module gathered at once (the embedding, or one decoder layer,
plus the prefetch bucket). A fixed 1.5 GiB covers the CUDA context, NCCL buffers and allocator slack.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

GiB = 1024**3
OVERHEAD = 1.5 * GiB
LLAMA_3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, pad_token_id=128001)
SUFFIX = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"}


@dataclass
class Shapes:
    """Parameter counts (elements) and activation dims of a sequence classifier with LoRA."""

    base: int          # frozen parameters
    trainable: int     # LoRA A and B + classification head
    largest_gather: int  # biggest single module ZeRO-3 gathers (embedding or one decoder layer)
    layers: int
    hidden: int
    kv_hidden: int
    mlp: int


def llama_shapes(config: dict, rank: int, blocks: str, num_labels: int = 2) -> Shapes:
    """Count parameters of LlamaForSequenceClassification(config) on the meta device, plus LoRA."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    cfg = LlamaConfig(**config, num_labels=num_labels)
    with torch.device("meta"):
        model = LlamaForSequenceClassification(cfg)
    suffixes = tuple(SUFFIX[b] for b in blocks)
    lora = sum(rank * (m.in_features + m.out_features) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and n.endswith(suffixes))
    head = sum(p.numel() for p in model.score.parameters())
    base = sum(p.numel() for p in model.parameters()) - head
    layer = sum(p.numel() for p in model.model.layers[0].parameters())
    embed = model.model.embed_tokens.weight.numel()
    kv = cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
    return Shapes(base, lora + head, max(layer, embed), cfg.num_hidden_layers, cfg.hidden_size, kv, cfg.intermediate_size)


def activations(s: Shapes, micro_batch: int, seq: int, checkpointing: bool) -> float:
    """Bytes of bf16 activations kept for the backward pass (see module docstring)."""
    per_layer = micro_batch * seq * (4 * s.hidden + 2 * s.kv_hidden + 4 * s.mlp) * 2
    if checkpointing:
        return s.layers * micro_batch * seq * s.hidden * 2 + per_layer
    return s.layers * per_layer


def plan(s: Shapes, stage: int, world: int, micro_batch: int, seq: int, checkpointing: bool,
         prefetch: int = 50_000_000) -> dict[str, float]:
    """Per-GPU bytes by component for ZeRO `stage` on `world` GPUs."""
    if stage == 2:
        weights = 2 * s.base
        trainable = 2 * s.trainable + 14 * s.trainable / world
    else:
        weights = 2 * s.base / world + 2 * (s.largest_gather + prefetch)
        trainable = 16 * s.trainable / world
    act = activations(s, micro_batch, seq, checkpointing)
    return {"weights": weights, "trainable": trainable, "activations": act, "total": weights + trainable + act + OVERHEAD}


def table(s: Shapes, micro_batch: int, seq: int, worlds=(1, 2, 4, 8)) -> str:
    """Markdown table: rows (stage, world), columns GiB per component, with and without checkpointing."""
    lines = ["| ZeRO | GPUs | frozen weights | LoRA+head+optimiser | activations | total | total (grad. ckpt) |",
             "|---|---|---|---|---|---|---|"]
    for stage in (2, 3):
        for w in worlds:
            p, q = plan(s, stage, w, micro_batch, seq, False), plan(s, stage, w, micro_batch, seq, True)
            lines.append(f"| {stage} | {w} | {p['weights'] / GiB:.2f} | {p['trainable'] / GiB:.3f} | "
                         f"{p['activations'] / GiB:.2f} | {p['total'] / GiB:.2f} | {q['total'] / GiB:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--blocks", default="qv")
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args()
    s = llama_shapes(LLAMA_3_8B, args.rank, args.blocks)
    print(f"Llama-3-8B sequence classifier: frozen {s.base / 1e9:.3f} B params, trainable {s.trainable / 1e6:.3f} M "
          f"(LoRA r={args.rank} on {args.blocks} + head), largest gathered module {s.largest_gather / 1e6:.0f} M")
    print(f"micro-batch {args.micro_batch} x {args.seq} tokens per GPU, bf16; GiB per GPU:\n")
    print(table(s, args.micro_batch, args.seq))


if __name__ == "__main__":
    main()
