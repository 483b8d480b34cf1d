"""Wall time and peak memory of our streaming merge vs PEFT's add_weighted_adapter vs mergekit.

    .venv/bin/python benchmarks/compare_merge.py                       # everything, table to stdout
    .venv/bin/python benchmarks/compare_merge.py --sets minilm --json benchmarks/results/minilm.json

Every contender runs in its own fresh process (one per input set x method x contender), reads the same
PEFT adapter folders from disk, and reports the wall time of the merge (after imports) and its peak
resident memory (``ru_maxrss``) minus the resident memory before the merge started.

Contenders (same task vectors τ_t = s B_t A_t, T = 8, rank 8):
  ours      osrm_core.merge METHODS, one module at a time (the `osrm merge` loop), factors read lazily;
  peft      PeftModel.load_adapter x T + add_weighted_adapter on a skeleton model with the target Linear
            layers only (no heads: docs/merging.md): `cat` for task arithmetic (exact, as ours) and `ties`
            (PEFT applies TIES to the factors, an approximation) / `ties_svd` (dense TIES + SVD back to r);
  mergekit  mergekit.merge_methods.registry.get(...).merge_group on dense W_t = 0 + τ_t per module
            (tensor-level; its own pipeline would additionally load full model shards), in the separate
            venv benchmarks/.venv-mergekit (see docs/benchmarks.md) so it never alters the main .venv.
Input sets: MiniLM shapes (6 layers, q/v 384x384) and Llama-3-8B shapes (q 4096x4096, v 1024x4096,
at 8/16/32 layers), written synthetically (seeded) as PEFT adapter folders under --workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MERGEKIT_PY = HERE / ".venv-mergekit" / "bin" / "python"
SHAPES = {"minilm": ("bert.encoder.layer.{i}.attention.self", "query", "value", 384, 384, 384),
          "llama": ("model.layers.{i}.self_attn", "q_proj", "v_proj", 4096, 4096, 1024)}
from osrm_core.lora import PEFT_PREFIX as PREFIX


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def module_names(kind: str, layers: int) -> list[tuple[str, int, int]]:
    """(module name, d_out, d_in) of the q and v projections of `layers` blocks."""
    block, q, v, d_in, d_q, d_v = SHAPES[kind]
    out = []
    for i in range(layers):
        out += [(f"{block.format(i=i)}.{q}", d_q, d_in), (f"{block.format(i=i)}.{v}", d_v, d_in)]
    return out


def write_adapters(folder: Path, kind: str, layers: int, tasks: int, rank: int, seed: int = 0) -> list[Path]:
    """T PEFT LoRA adapter folders (A: r x d_in Gaussian/sqrt(d_in), B: d_out x r N(0, 0.02), alpha = 2r)."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    mods = module_names(kind, layers)
    targets = sorted({n.rsplit(".", 1)[1] for n, _, _ in mods})
    paths = []
    for t in range(tasks):
        tensors = {}
        for name, d_out, d_in in mods:
            tensors[f"{PREFIX}{name}.lora_A.weight"] = torch.randn(rank, d_in, generator=g) / d_in**0.5
            tensors[f"{PREFIX}{name}.lora_B.weight"] = torch.randn(d_out, rank, generator=g) * 0.02
        p = folder / f"{kind}-{layers}L" / f"task{t}"
        p.mkdir(parents=True, exist_ok=True)
        save_file(tensors, p / "adapter_model.safetensors", metadata={"format": "pt"})
        cfg = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": targets, "lora_dropout": 0.0,
               "bias": "none", "task_type": None, "base_model_name_or_path": None, "use_rslora": False}
        (p / "adapter_config.json").write_text(json.dumps(cfg))
        paths.append(p)
    return paths


# ---------------------------------------------------------------- contenders (run inside a worker process)


def run_ours(paths: list[Path], method: str, params: dict) -> float:
    """The `osrm merge` loop: one module at a time, factors read lazily; returns Σ ||Δ||_F (a checksum)."""
    import torch

    from osrm_core.merge import METHODS
    from osrm_core.merge.types import ModuleUpdates
    from stages.io.adapters import Adapter

    m = METHODS[method]
    adapters = [Adapter(p) for p in paths]
    prm = m.params.model_validate(params)
    gen, total = torch.Generator().manual_seed(0), 0.0
    for name in adapters[0].modules:
        A, B = zip(*(a.factors(name) for a in adapters))
        res = m.fn(ModuleUpdates(A=list(A), B=list(B), scale=[a.scale for a in adapters], name=name), prm, gen)
        total += float(torch.linalg.norm(res.delta))
        del res
    return total


class _Skeleton:
    """Build an nn.Module tree holding only the target Linear layers (uninitialised weights)."""

    @staticmethod
    def build(kind: str, layers: int):
        from torch import nn

        root = nn.Module()
        for name, d_out, d_in in module_names(kind, layers):
            parent = root
            parts = name.split(".")
            for p in parts[:-1]:
                if not hasattr(parent, p):
                    parent.add_module(p, nn.Module())
                parent = getattr(parent, p)
            parent.add_module(parts[-1], nn.Linear(d_in, d_out, bias=False, device="meta").to_empty(device="cpu"))
        return root


def run_peft(paths: list[Path], method: str, params: dict, kind: str, layers: int) -> float:
    """PeftModel with T adapters + add_weighted_adapter; returns Σ ||Δ||_F of the merged adapter."""
    import torch
    from peft import PeftModel

    model = PeftModel.from_pretrained(_Skeleton.build(kind, layers), str(paths[0]), adapter_name="t0")
    for i, p in enumerate(paths[1:], 1):
        model.load_adapter(str(p), adapter_name=f"t{i}")
    names = [f"t{i}" for i in range(len(paths))]
    combo = {"task_arithmetic": "cat", "ties": params.get("peft_combination", "ties")}[method]
    weights = [params.get("lambda", 1.0)] * len(names)
    kw = {"density": params["density"], "majority_sign_method": "total"} if method == "ties" else {}
    if combo == "ties_svd":
        kw["svd_full_matrices"] = False
    model.add_weighted_adapter(names, weights, "merged", combination_type=combo, **kw)
    total = 0.0
    for mod in model.modules():
        if hasattr(mod, "lora_A") and "merged" in getattr(mod, "lora_A", {}):
            total += float(torch.linalg.norm(mod.get_delta_weight("merged")))
    return total


def run_mergekit(paths: list[Path], method: str, params: dict) -> float:
    """mergekit's tensor-level merge_group per module on W_t = 0 + τ_t; returns Σ ||Δ||_F."""
    import torch
    from mergekit.merge_methods.base import TensorGroup
    from mergekit.merge_methods.registry import get
    from safetensors import safe_open

    files = [safe_open(str(p / "adapter_model.safetensors"), "pt") for p in paths]
    cfgs = [json.loads((p / "adapter_config.json").read_text()) for p in paths]
    scales = [c["lora_alpha"] / c["r"] for c in cfgs]
    keys = sorted(k[len(PREFIX):-len(".lora_A.weight")] for k in files[0].keys() if ".lora_A." in k)
    m, total = get(method), 0.0
    ids = range(1, len(paths) + 1)
    kw = {"weight": {i: 1.0 for i in ids}, "density": {i: params.get("density", 1.0) for i in ids},
          "lambda": params.get("lambda", 1.0), "normalize": method == "ties", "rescale": False, "int8_mask": False}
    for name in keys:
        taus = [s * (f.get_tensor(f"{PREFIX}{name}.lora_B.weight") @ f.get_tensor(f"{PREFIX}{name}.lora_A.weight"))
                for f, s in zip(files, scales)]
        group = TensorGroup.from_tensors([torch.zeros_like(taus[0])] + taus, base_index=0)
        total += float(torch.linalg.norm(m.merge_group(group, **kw)))
        del taus, group
    return total


def worker(args: argparse.Namespace) -> None:
    """Run one contender on one input set and print a JSON line {seconds, peak_mib, base_mib, checksum}."""
    import torch

    torch.set_num_threads(args.threads)
    spec = json.loads(args.worker)
    paths = [Path(p) for p in spec["paths"]]
    if spec["contender"] == "ours":
        import osrm_core.merge  # noqa: F401  (imports before the baseline)
        import stages.io.adapters  # noqa: F401
    elif spec["contender"] == "peft":
        import peft  # noqa: F401
    else:
        import mergekit.merge_methods.registry  # noqa: F401
    base = rss_mib()
    start = time.perf_counter()
    if spec["contender"] == "ours":
        checksum = run_ours(paths, spec["method"], spec["params"])
    elif spec["contender"] == "peft":
        checksum = run_peft(paths, spec["method"], spec["params"], spec["kind"], spec["layers"])
    else:
        checksum = run_mergekit(paths, spec["method"], spec["params"])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "base_mib": base, "checksum": checksum}))


# ---------------------------------------------------------------- driver


METHOD_PARAMS = {"ties": {"density": 0.2, "lambda": 1.0}, "task_arithmetic": {"lambda": 0.3}}


def cases(sets: list[str], llama_layers: list[int], peft_svd: bool) -> list[dict]:
    """(kind, layers, method, contender, extra params) of every run, in table order."""
    out = []
    grid = ([("minilm", 6)] if "minilm" in sets else []) + ([("llama", n) for n in llama_layers] if "llama" in sets else [])
    for kind, layers in grid:
        for method in ("ties", "task_arithmetic"):
            for contender in ("ours", "peft", "mergekit"):
                out.append({"kind": kind, "layers": layers, "method": method, "contender": contender, "params": dict(METHOD_PARAMS[method])})
            if method == "ties" and peft_svd and (kind == "minilm" or layers == min(llama_layers)):
                out.append({"kind": kind, "layers": layers, "method": method, "contender": "peft",
                            "params": {**METHOD_PARAMS[method], "peft_combination": "ties_svd"}})
    return out


def launch(case: dict, paths: list[Path], threads: int, timeout: int) -> dict:
    """One fresh process per contender: the main .venv for ours/peft, benchmarks/.venv-mergekit for mergekit."""
    py = str(MERGEKIT_PY) if case["contender"] == "mergekit" else sys.executable
    if case["contender"] == "mergekit" and not MERGEKIT_PY.exists():
        return {"error": "no benchmarks/.venv-mergekit (see docs/benchmarks.md)"}
    spec = json.dumps({**case, "paths": [str(p) for p in paths]})
    env = {**os.environ, "PYTHONPATH": str(ROOT) if case["contender"] != "mergekit" else "", "OMP_NUM_THREADS": str(threads)}
    try:
        proc = subprocess.run([py, str(Path(__file__).resolve()), "--worker", spec, "--threads", str(threads)],
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(lines[-1])


def label(case: dict) -> str:
    combo = case["params"].get("peft_combination")
    if case["contender"] == "peft":
        combo = combo or {"ties": "ties", "task_arithmetic": "cat"}[case["method"]]
        return f"peft add_weighted_adapter({combo})"
    return {"ours": "ours (osrm merge loop)", "mergekit": "mergekit merge_group"}[case["contender"]]


def table(rows: list[dict]) -> str:
    """Markdown: per (set, method) the contenders with seconds, peak MiB over baseline, and ratios to ours."""
    lines = ["| input | method | contender | wall s | peak MiB (over baseline) | time / ours | peak / ours | Σ‖Δ‖ |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c, res = r["case"], r["result"]
        ours = next((x["result"] for x in rows if x["case"]["contender"] == "ours" and x["case"]["kind"] == c["kind"]
                     and x["case"]["layers"] == c["layers"] and x["case"]["method"] == c["method"]), {})
        name = f"{c['kind']} {c['layers']}L"
        if "error" in res:
            lines.append(f"| {name} | {c['method']} | {label(c)} | – | – | – | – | {res['error']} |")
            continue
        peak = res["peak_mib"] - res["base_mib"]
        opeak = ours.get("peak_mib", 0) - ours.get("base_mib", 0)
        tr = f"{res['seconds'] / ours['seconds']:.2f}" if ours.get("seconds") else "–"
        pr = f"{peak / opeak:.2f}" if opeak > 0 else "–"
        lines.append(f"| {name} | {c['method']} | {label(c)} | {res['seconds']:.2f} | {peak:.0f} | {tr} | {pr} | {res['checksum']:.4g} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per contender (1: on a shared 2-core machine OpenMP spin-waits make 2 threads ~10x slower)")
    ap.add_argument("--sets", default="minilm,llama")
    ap.add_argument("--llama-layers", default="8,16,32")
    ap.add_argument("--contenders", default="ours,peft,mergekit")
    ap.add_argument("--methods", default="ties,task_arithmetic")
    ap.add_argument("--peft-svd", action="store_true", help="also time PEFT's ties_svd (dense TIES + SVD) at the smallest size")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--timeout", type=int, default=900, help="seconds per contender run")
    ap.add_argument("--workdir", default=None, help="where the synthetic adapters go (default: a temp folder)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    layers = [int(x) for x in args.llama_layers.split(",")]
    todo = [c for c in cases(args.sets.split(","), layers, args.peft_svd)
            if c["contender"] in args.contenders.split(",") and c["method"] in args.methods.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        inputs = {}
        for c in todo:
            key = (c["kind"], c["layers"])
            if key not in inputs:
                inputs[key] = write_adapters(Path(tmp), c["kind"], c["layers"], args.tasks, args.rank)
            res = launch(c, inputs[key], args.threads, args.timeout)
            rows.append({"case": c, "result": res})
            print(f"{c['kind']} {c['layers']}L {c['method']:<16} {label(c):<40} {json.dumps(res)}", flush=True)
    print(table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
