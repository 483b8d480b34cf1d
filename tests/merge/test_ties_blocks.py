"""The row-blocked family merge (ties_blocks.py) with tiny blocks equals the frozen un-blocked code.

Tiny blocks (MIN_ROWS rows) make every module span many blocks, so the tie budget carried across
blocks, the sampled k-th-value bracket streamed block by block, and DARE's masks drawn per task in
flat order are all exercised; heavy ties come from integer-valued factors.
"""

from __future__ import annotations

import pytest
import torch
from merge_testlib import random_updates
from test_family_frozen import FROZEN, bits_equal

from osrm_core.merge import METHODS, ties_blocks
from osrm_core.merge.types import ModuleUpdates


def integer_updates(T: int, d_out: int, d_in: int, seed: int) -> ModuleUpdates:
    """Rank-1 updates with entries in {-2..2}: τ_t has few distinct values, so the trim threshold is tied."""
    g = torch.Generator().manual_seed(seed)
    return ModuleUpdates(
        A=[torch.randint(-2, 3, (1, d_in), generator=g).float() for _ in range(T)],
        B=[torch.randint(-2, 3, (d_out, 1), generator=g).float() for _ in range(T)],
        scale=[1.0] * T,
    )


def test_row_blocks_cover_the_rows_with_no_short_block():
    assert ties_blocks.row_blocks(9, 7) == [(0, 9)]
    blocks = ties_blocks.row_blocks(4096, 4096)
    assert blocks[0] == (0, 8) and blocks[-1] == (4088, 4096) and len(blocks) == 512
    blocks = ties_blocks.row_blocks(100, 1000, block_elems=1)  # 8 rows each, the last takes the 4 left over
    assert blocks[-1] == (88, 100) and all(b - a >= 8 for a, b in blocks)
    assert [a for a, _ in blocks[1:]] == [b for _, b in blocks[:-1]]


@pytest.mark.parametrize("key,raw", [
    ("ties", {}), ("ties", {"density": 0.37, "election": "frequency", "weights": [1.0, 0.5, 2.0, -0.25]}),
    ("ties", {"density": 0.3, "variant": "mergekit", "weights": [1.0, 0.5, 2.0, -0.25]}),
    ("magnitude_prune", {"density": 0.55}), ("dare_ties", {"density": 0.3, "election": "frequency"}),
])
@pytest.mark.parametrize("make", ["random", "integer"])
def test_tiny_blocks_are_bit_identical_to_the_frozen_code(monkeypatch, key, raw, make):
    monkeypatch.setattr(ties_blocks, "BLOCK_ELEMS", 1)  # MIN_ROWS-row blocks
    for d_out, d_in in ((37, 11), (530, 510)):  # the second goes through the sampled bracket
        u = random_updates(T=4, d_out=d_out, d_in=d_in, ranks=[2, 3, 1, 4], seed=d_out) if make == "random" \
            else integer_updates(4, d_out, d_in, seed=d_out)
        if make == "random":
            u.B[2].zero_()  # an untrained adapter: its threshold is 0, all entries tied
        m = METHODS[key]
        p = m.params.model_validate(raw)
        res = m.fn(u, p, torch.Generator().manual_seed(4))
        want, info = FROZEN[key](u, p, torch.Generator().manual_seed(4))
        assert bits_equal(res.delta, want), (key, raw, d_out)
        assert res.info == info


def test_ties_keep_the_lowest_indices_across_blocks(monkeypatch):
    """One task, values tied at the threshold in every block: exactly k kept, the first ties in flat order."""
    monkeypatch.setattr(ties_blocks, "BLOCK_ELEMS", 1)
    u = ModuleUpdates(A=[torch.ones(1, 10)], B=[torch.tensor([[3.0]] * 8 + [[1.0]] * 32)], scale=[1.0])
    delta = METHODS["ties"].fn(u, METHODS["ties"].params.model_validate({"density": 0.5}), None).delta
    flat = delta.view(-1)
    assert int(torch.count_nonzero(flat)) == 200  # k = 0.5 · 400: the 80 threes and the first 120 ones
    assert torch.equal(flat[:200], torch.tensor([3.0] * 80 + [1.0] * 120)) and not flat[200:].any()
