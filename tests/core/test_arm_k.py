"""An arm's osrm.k: features are extracted at the largest k (feature_k), a smaller k is a prefix of the seeded
draw, and the token estimator (Grams summed over every row) refuses it at config time (docs/regimes.md)."""

import pytest

from osrm_core.errors import OsrmError
from osrm_pipeline.pipeline_config import parse_config
from stages.extract_features import sample_draw, sample_indices

ARMS = {"lora": {"init": "gaussian"}, "osrm": {"init": "osrm"}, "k20": {"init": "osrm", "osrm": {"k": 20}},
        "k80": {"init": "osrm", "osrm": {"k": 80}}}


def test_feature_k_is_the_largest_and_survives_arm_views():
    cfg = parse_config({"osrm": {"k": 50}, "arms": ARMS})
    assert cfg.feature_k == 80
    for arm, k in (("osrm", 50), ("k20", 20), ("k80", 80), ("lora", 50)):
        view = cfg.for_arm(arm)
        assert view.osrm.k == k and view.feature_k == 80
    assert parse_config({}).feature_k == 100


def test_token_estimator_refuses_a_k_it_cannot_honour():
    with pytest.raises(OsrmError) as err:
        parse_config({"osrm": {"k": 50, "estimator": "token"}, "arms": ARMS})
    msg = str(err.value)
    assert "\n" not in msg and "arms.osrm.osrm.k=50 with estimator token" in msg and "(80)" in msg
    ok = parse_config({"osrm": {"k": 80, "estimator": "token"},
                       "arms": {"lora": {"init": "gaussian"}, "tok": {"init": "osrm"},
                                "k20": {"init": "osrm", "osrm": {"k": 20, "estimator": "sample-mean"}}}})
    assert ok.for_arm("k20").feature_k == 80 and ok.for_arm("tok").osrm.k == 80


@pytest.mark.parametrize("n", [7, 50, 1000])
def test_a_smaller_k_is_a_prefix_of_the_draw(n):
    idx, draw = sample_draw(n, 100, seed=3)
    assert idx == sorted(idx) == sample_indices(n, 100, 3) and sorted(draw) == list(range(len(idx)))
    for k in (2, 20, 99):
        assert [i for i, p in zip(idx, draw) if p < k] == sample_indices(n, k, 3)
