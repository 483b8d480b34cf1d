"""Time every merging method on one synthetic target module (random LoRA factors, Grams, Fishers).

    python benchmarks/merge_bench.py                              # MiniLM-sized: 384×384, T=8, r=8
    python benchmarks/merge_bench.py --d-out 1024 --d-in 1024     # RoBERTa-large q/v
    python benchmarks/merge_bench.py --methods ties,knots --repeats 5 --json out.json

Per method: median wall time per module, the output rank (factor methods), and the relative
Frobenius distance of the merged update to task arithmetic with λ = 1/T (= weight averaging), a
sanity scale for how far each method moves from the plain average.  Also times ``to_low_rank`` of
the TIES result to rank r (what exporting a dense merge as a single adapter costs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from osrm_core.merge import METHODS
from osrm_core.merge.lowrank import to_low_rank
from osrm_core.merge.types import ModuleUpdates


def synthetic_updates(d_out: int, d_in: int, tasks: int, rank: int, seed: int) -> ModuleUpdates:
    """T random LoRA pairs (A: r × d_in, B: d_out × r, s = 2), Grams from 4·d_in random tokens,
    Fishers as squared random gradients."""
    g = torch.Generator().manual_seed(seed)
    grams = []
    for _ in range(tasks):
        x = torch.randn(4 * d_in, d_in, generator=g)
        grams.append(x.T @ x)
    return ModuleUpdates(
        A=[torch.randn(rank, d_in, generator=g) / d_in**0.5 for _ in range(tasks)],
        B=[torch.randn(d_out, rank, generator=g) * 0.01 for _ in range(tasks)],
        scale=[2.0] * tasks,
        grams=grams,
        counts=[4 * d_in] * tasks,
        fishers=[torch.randn(d_out, d_in, generator=g).square() for _ in range(tasks)],
        name="bench",
    )


def time_method(key: str, updates: ModuleUpdates, repeats: int, seed: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` runs (the dense delta is materialised inside the timing)."""
    method = METHODS[key]
    params = method.params()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = method.fn(updates, params, torch.Generator().manual_seed(seed))
        _ = result.delta
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-out", type=int, default=384)
    ap.add_argument("--d-in", type=int, default=384)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated config keys")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()

    updates = synthetic_updates(args.d_out, args.d_in, args.tasks, args.rank, args.seed)
    average = sum(updates.deltas()) / args.tasks
    rows = []
    print(f"module {args.d_out}×{args.d_in}, T={args.tasks}, r={args.rank}, torch threads={torch.get_num_threads()}")
    print(f"{'method':<16}{'ms/module':>11}{'rank':>7}{'rel to avg':>12}")
    for key in [k.strip() for k in args.methods.split(",") if k.strip()]:
        seconds, res = time_method(key, updates, args.repeats, args.seed)
        rank = res.factors[0].shape[0] if res.factors is not None else None
        rel = float(torch.linalg.norm(res.delta - average) / torch.linalg.norm(average))
        rows.append({"method": key, "ms": 1e3 * seconds, "rank": rank, "rel_to_average": rel})
        print(f"{key:<16}{1e3 * seconds:>11.2f}{rank if rank is not None else '-':>7}{rel:>12.3f}")
    if "ties" in METHODS:
        dense = METHODS["ties"].fn(updates, METHODS["ties"].params(), None).delta
        start = time.perf_counter()
        _, _, err = to_low_rank(dense, args.rank)
        ms = 1e3 * (time.perf_counter() - start)
        rows.append({"method": "to_low_rank(ties)", "ms": ms, "rank": args.rank, "rel_error": err})
        print(f"{'to_low_rank':<16}{ms:>11.2f}{args.rank:>7}  rel err {err:.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
