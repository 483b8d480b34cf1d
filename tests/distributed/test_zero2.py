"""DeepSpeed ZeRO-2 on two CPU ranks (gloo, torchrun) trains the tiny model like one process does."""

from tests.distributed.zero_lib import check_zero_matches_single


def test_zero2_two_ranks_match_single_process(cli, tmp_path):
    check_zero_matches_single(cli, tmp_path, 2)
