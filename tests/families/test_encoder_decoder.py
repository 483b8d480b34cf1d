"""The encoder-decoder family end to end on a tiny random model built from a config."""

from tests.families.family_lib import run_family


def test_encoder_decoder_end_to_end(cli, tmp_path):
    run_family(cli, tmp_path, "encoder-decoder")
