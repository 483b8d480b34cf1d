"""Pure rank/world helpers: contiguous blocks and per-rank slices of global batches."""

import pytest

from osrm_core.distributed import block, rank_order, steps_per_epoch, world_from_env


@pytest.mark.parametrize("n,world", [(13, 2), (16, 4), (3, 4), (1, 1)])
def test_blocks_tile_the_range(n, world):
    spans = [block(n, r, world) for r in range(world)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_rank_order_reassembles_global_batches():
    order = list(range(10))[::-1]
    parts = [rank_order(order, 2, r, 2) for r in range(2)]  # global batch 4; 10 rows -> 4, 4, 2
    assert parts[0] == [9, 8, 5, 4, 1] and parts[1] == [7, 6, 3, 2, 0]
    assert steps_per_epoch(10, 2, 2) == 3 and steps_per_epoch(10, 4, 1) == 3
    assert rank_order(order, 3, 0, 1) == order
    odd = [rank_order(list(range(5)), 2, r, 2) for r in range(2)]  # wrapped to 6 rows
    assert len(odd[0]) == len(odd[1]) == 3 and sorted(odd[0] + odd[1])[:5] == [0, 0, 1, 2, 3]


def test_world_from_env():
    assert world_from_env({}).size == 1
    w = world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (w.rank, w.size, w.local_rank, w.main) == (3, 4, 1, False)
