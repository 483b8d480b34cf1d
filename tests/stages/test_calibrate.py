"""`osrm calibrate` (stages/calibrate.py): a study's own metric mix is simulated and written as JSON; an unknown metric
is a one-line error before anything is simulated or written."""

from __future__ import annotations

import json


def test_calibrate_simulates_the_given_metric_mix(cli, tmp_path):
    out = tmp_path / "cal.json"
    res = cli("calibrate", "--seeds", "3", "--seed-sd", "2", "--studies", "10", "--n-boot", "10", "--rows", "40",
              "--metric", "matthews", "--metric", "rouge_l", "--metric", "pearson_spearman", "--json", out)
    got = json.loads(out.read_text())
    assert got["metrics"] == ["matthews", "rouge_l", "pearson_spearman"] and got["power_metrics"] == ["matthews"]
    assert [(r["seeds"], r["seed_sd"]) for r in got["null"]] == [(3, 2.0)]
    assert 0.0 <= got["null"][0]["seed_level"] <= 1.0 and "tasks matthews, rouge_l, pearson_spearman" in res.output


def test_an_unknown_metric_is_one_line_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "cal.json"
    res = cli("calibrate", "--metric", "bleu", "--json", out, ok=False)
    assert res.exit_code != 0 and "--metric: no simulation for ['bleu']" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()
