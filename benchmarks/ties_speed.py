"""TIES / DARE-TIES / magnitude pruning at Llama-3-8B shapes: today's code vs the frozen previous code.

    OMP_NUM_THREADS=1 python benchmarks/ties_speed.py --layers 2 --old-layers 1 --json out.json

Per layer: q_proj 4096×4096 and v_proj 1024×4096 (GQA), T = 8 rank-8 adapters (A ~ N(0, 1/d_in),
B ~ N(0, 0.02²), s = 2), one module at a time as `osrm merge` does.  The previous implementation is
the frozen copy in tests/merge/test_family_frozen.py (the bit-identity reference); both run in this
process on the same inputs, and every new result is checked with ``torch.equal`` against the old one.
Times are per layer (median over layers), extrapolated to 32 layers; the ratio old/new is the
speed-up.  The new code works in cache-sized row blocks (osrm_core/merge/ties_blocks.py), so its DRAM
traffic is only the output Δ (written once) and, for DARE, the T bool keep masks (written, then read);
the line "DRAM floor" prices that traffic at the copy bandwidth measured here with a large tensor
copy — the rest of the time is in-cache elementwise work.  Peak RSS growth shows memory is flat in
layers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import time
from pathlib import Path

import torch

from osrm_core.merge import METHODS
from osrm_core.merge.types import ModuleUpdates

FROZEN_FILE = Path(__file__).resolve().parents[1] / "tests" / "merge" / "test_family_frozen.py"
SHAPES = {"q_proj": (4096, 4096), "v_proj": (1024, 4096)}

def dram_bytes(key: str, n: int, tasks: int) -> int:
    """DRAM bytes of the blocked code on one d_out×d_in module of n entries: Δ written once (float32);
    DARE also writes and reads T bool masks of n bytes.  (Factors and blocks stay in cache.)"""
    return 4 * n + (2 * tasks * n if key.startswith("dare") else 0)


def frozen():
    """The frozen pre-speed-up merge functions (``FROZEN`` of the bit-identity test)."""
    spec = importlib.util.spec_from_file_location("test_family_frozen", FROZEN_FILE)
    mod = importlib.util.module_from_spec(spec)
    import sys

    sys.path.insert(0, str(FROZEN_FILE.parent))  # for merge_testlib
    spec.loader.exec_module(mod)
    return mod.FROZEN


def bandwidth_gbs(mib: int = 512, repeats: int = 5) -> float:
    """Copy bandwidth (GB/s, read + write counted) of a ``mib``-MiB float32 tensor, best of ``repeats``."""
    src = torch.ones(mib * 2**18)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch
    best = min(_seconds(lambda: dst.copy_(src)) for _ in range(repeats))
    return 2 * src.numel() * 4 / best / 1e9


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def layer_updates(layer: int, tasks: int, rank: int, shrink: int = 1) -> dict[str, ModuleUpdates]:
    """q_proj and v_proj updates of one layer (both dims divided by ``shrink`` for a quick run)."""
    g = torch.Generator().manual_seed(layer)
    return {
        name: ModuleUpdates(
            A=[torch.randn(rank, d_in, generator=g) / d_in**0.5 for _ in range(tasks)],
            B=[torch.randn(d_out, rank, generator=g) * 0.02 for _ in range(tasks)],
            scale=[2.0] * tasks,
            name=f"layers.{layer}.{name}",
        )
        for name, (d_out, d_in) in ((k, (o // shrink, i // shrink)) for k, (o, i) in SHAPES.items())
    }


def time_layers(fn, layers: int, tasks: int, rank: int, check=None, shrink: int = 1) -> list[float]:
    """Seconds per layer (q + v) of ``fn(updates, generator) -> delta``; ``check(name, u, delta)``."""
    out = []
    for layer in range(layers):
        total = 0.0
        for name, u in layer_updates(layer, tasks, rank, shrink).items():
            start = time.perf_counter()
            delta = fn(u, torch.Generator().manual_seed(layer))
            total += time.perf_counter() - start
            if check:
                check(u, layer, delta)
        out.append(total)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=2, help="layers timed with the new code")
    ap.add_argument("--old-layers", type=int, default=1, help="layers timed with the old code (slow)")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--methods", default="ties,dare_ties,magnitude_prune")
    ap.add_argument("--shrink", type=int, default=1, help="divide both dims (quick check; not Llama shapes)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    bw = bandwidth_gbs()
    old_fns = frozen()
    n_q = SHAPES["q_proj"][0] * SHAPES["q_proj"][1] // args.shrink**2
    gb = {key: dram_bytes(key, n_q, args.tasks) / 1e9 for key in ("ties", "dare_ties")}
    print(f"torch threads {torch.get_num_threads()}, copy bandwidth {bw:.1f} GB/s; DRAM floor per q_proj: "
          + ", ".join(f"{k} {v:.2f} GB ⇒ {v / bw * 1e3:.0f} ms" for k, v in gb.items()))
    rows = []
    for key in [k.strip() for k in args.methods.split(",") if k.strip()]:
        m = METHODS[key]
        p = m.params()
        old = {}
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t_old = time_layers(lambda u, g: old_fns[key](u, p, g)[0], args.old_layers, args.tasks, args.rank,
                            check=lambda u, layer, d: old.__setitem__((u.name, layer), d), shrink=args.shrink)

        def check(u, layer, d):
            if (u.name, layer) in old and not torch.equal(d, old[(u.name, layer)]):
                raise SystemExit(f"{key}: {u.name} differs from the frozen code")

        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t_new = time_layers(lambda u, g: m.fn(u, p, g).delta, args.layers, args.tasks, args.rank, check, args.shrink)
        old.clear()
        row = {"method": key, "old_s_per_layer": statistics.median(t_old), "new_s_per_layer": statistics.median(t_new),
               "new_layers": args.layers, "old_layers": args.old_layers, "identical": True,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_old_mib": rss1 / 1024,
               "rss_before_mib": rss0 / 1024}
        row["ratio"] = row["old_s_per_layer"] / row["new_s_per_layer"]
        rows.append(row)
        print(f"{key:<16} old {row['old_s_per_layer']:7.2f} s/layer (32L ≈ {32 * row['old_s_per_layer']:6.1f} s)  "
              f"new {row['new_s_per_layer']:6.2f} s/layer (32L ≈ {32 * row['new_s_per_layer']:5.1f} s)  "
              f"×{row['ratio']:.1f}  bit-identical  peak RSS {row['peak_rss_mib']:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "bandwidth_gbs": bw, "dram_gb_per_q_module": gb,
                                               "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
