"""The regime map's pure parts (osrm_core/regime_map.py): comparisons picked from a study's numbers, "helps" only
when both comparators say better, the table and the plot."""

import math

from osrm_core import regime_map


def _e(diff, lo, hi, code, holm=None):
    e = {"diff": diff, "ci_low": lo, "ci_high": hi, "p": 0.01, "verdict_code": code, "primary": int(holm is not None),
         "t_low": lo, "se": 1.0}
    return e | ({"p_holm": holm} if holm is not None else {})


def _numbers(code_ta):
    return {"k10": {"individual": _e(-1, -2, 0.5, 0),
                    "task_arithmetic": _e(3, 1, 5, code_ta, 0.03) | {"lambda1": _e(1, -1, 3, 0)},
                    "ties": _e(0.5, -2, 3, 0, 0.8)}}


REGIME = {"median_null_dim": 344, "d_in_max": 384, "rows_max": 40, "layers": 60, "exact_layers": 60}


def test_point_takes_chosen_lambda1_and_individual_rows_and_the_null_fraction():
    p = regime_map.point("k10", REGIME, 0.2, _numbers(1), _numbers(1))
    assert math.isclose(p["null_fraction"], 344 / 384)
    assert set(p["vs_reference"]) == {"task_arithmetic", "task_arithmetic@lambda1", "ties", "individual"}
    assert p["vs_reference"]["task_arithmetic"]["p_holm"] == 0.03
    assert "t_low" not in p["vs_reference"]["task_arithmetic"]  # only the seed-level interval is kept
    assert p["vs_reference"]["task_arithmetic@lambda1"]["diff"] == 1


def test_helps_needs_both_comparators():
    assert regime_map.helps(regime_map.point("k10", REGIME, None, _numbers(1), _numbers(1)), "task_arithmetic")
    assert not regime_map.helps(regime_map.point("k10", REGIME, None, _numbers(1), _numbers(0)), "task_arithmetic")
    assert not regime_map.helps(regime_map.point("k10", REGIME, None, _numbers(1), _numbers(1)), "ties")


def test_table_has_a_row_per_comparator_and_skips_self_comparisons(tmp_path):
    pts = [regime_map.point("k10", REGIME, 0.2, _numbers(1), _numbers(-1)),
           regime_map.point("ctl", None, 1.0, {}, {})]
    m = {"backbone": "tiny", "seeds": [1, 2, 3], "reference": "ref", "control": "ctl", "points": pts}
    lines = regime_map.table(m).splitlines()
    assert len(lines) == 2 + 2 + 1  # header, rule, k10 vs ref and vs ctl, ctl vs ref (none vs itself)
    assert "| `k10` | 40 / 384 | 344 | 0.90 | 0.20 | ref | +3.0 [1.0, 5.0] better, p_Holm 0.03" in lines[2]
    assert "worse" in lines[3] and lines[3].startswith('| `k10` | " |')
    assert lines[4].startswith("| `ctl` | – | – | – | 1.00 | ref | – |")
    regime_map.plot(m, tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 1000
