"""The ZeRO memory plan counts Llama-3-8B's parameters from its shapes and scales as ZeRO says."""

import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("memory_plan", Path(__file__).resolve().parents[2] / "benchmarks/memory_plan.py")
mp = importlib.util.module_from_spec(spec)
sys.modules["memory_plan"] = mp  # dataclasses look their module up
spec.loader.exec_module(mp)


def test_llama_3_8b_counts_and_scaling():
    s = mp.llama_shapes(mp.LLAMA_3_8B, rank=8, blocks="qv")
    assert abs(s.base - 7.505e9) < 5e6  # 8.03 B minus the 525 M-parameter LM head (a classifier has none)
    assert s.trainable == 32 * 8 * ((4096 + 4096) + (4096 + 1024)) + 2 * 4096  # q+v LoRA r=8 + score head
    z2 = [mp.plan(s, 2, w, 8, 128, False)["weights"] for w in (1, 8)]
    z3 = [mp.plan(s, 3, w, 8, 128, False)["weights"] for w in (1, 8)]
    assert z2[0] == z2[1] and z3[1] < z3[0] / 4  # ZeRO-2 replicates the frozen body, ZeRO-3 partitions it
    assert mp.activations(s, 8, 128, True) < mp.activations(s, 8, 128, False) / 5
