"""The row-blocked family merge (ties_blocks.py) with tiny blocks equals the frozen un-blocked code.

Tiny blocks (ROW_ALIGN = 16 rows) make every module span many blocks, so the tie budget carried across
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
    blocks = ties_blocks.row_blocks(4096, 4096, block_elems=1 << 16)
    assert blocks[0] == (0, 16) and blocks[-1] == (4080, 4096) and len(blocks) == 256
    blocks = ties_blocks.row_blocks(100, 1000, block_elems=1)  # 16 rows each, the last takes the 4 left over
    assert blocks[-1] == (80, 100) and all(a % 16 == 0 and b - a >= 16 for a, b in blocks)
    assert [a for a, _ in blocks[1:]] == [b for _, b in blocks[:-1]]


@pytest.mark.parametrize("d_out", [19, 90, 530, 4113])
@pytest.mark.parametrize("r", [1, 3, 8])
def test_block_rows_of_the_product_are_the_full_products_bits(d_out, r):
    """The premise of the blocking (MKL's row panels): B[lo:hi] @ A equals (B @ A)[lo:hi] bitwise."""
    g = torch.Generator().manual_seed(d_out + r)
    A, B = torch.randn(r, 510, generator=g), torch.randn(d_out, r, generator=g)
    full = B @ A
    assert all(torch.equal(B[a:b] @ A, full[a:b]) for a, b in ties_blocks.row_blocks(d_out, 510, block_elems=1))


@pytest.mark.parametrize("key,raw", [
    ("ties", {}), ("ties", {"density": 0.37, "election": "frequency", "weights": [1.0, 0.5, 2.0, -0.25]}),
    ("ties", {"density": 0.3, "variant": "mergekit", "weights": [1.0, 0.5, 2.0, -0.25]}),
    ("magnitude_prune", {"density": 0.55}), ("dare_ties", {"density": 0.3, "election": "frequency"}),
])
@pytest.mark.parametrize("make", ["random", "integer"])
def test_tiny_blocks_are_bit_identical_to_the_frozen_code(monkeypatch, key, raw, make):
    monkeypatch.setattr(ties_blocks, "BLOCK_ELEMS", 1)  # 16-row blocks
    for d_out, d_in in ((37, 11), (530, 510)):  # 2 and 33 blocks  # the second goes through the sampled bracket
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
    u = ModuleUpdates(A=[torch.ones(1, 10)], B=[torch.tensor([[3.0]] * 16 + [[1.0]] * 64)], scale=[1.0])
    delta = METHODS["ties"].fn(u, METHODS["ties"].params.model_validate({"density": 0.5}), None).delta
    flat = delta.view(-1)  # 5 blocks of 160: the threes, then ones; the budget runs out in the 3rd block
    assert int(torch.count_nonzero(flat)) == 400  # k = 0.5 · 800: the 160 threes and the first 240 ones
    assert torch.equal(flat[:400], torch.tensor([3.0] * 160 + [1.0] * 240)) and not flat[400:].any()
