"""dvc.yaml and the Layout name the same paths: every `outs` path of dvc.yaml is an artifact folder of
the Layout (or a folder that holds some), and every artifact the Layout defines is covered by an out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from osrm_pipeline.layout import Layout, ModelRef

REPO = Path(__file__).resolve().parents[1]
ANY = "*"


def _layout_paths() -> set[str]:
    """Every artifact folder of the Layout, with '*' for each name (seed, task, arm, method)."""
    lay = Layout(Path("${workdir}"), ANY)
    paths = [lay.features(ANY), lay.subspace(ANY, ANY), lay.adapter(ANY, ANY), lay.merged(ANY, ANY), lay.report(),
             lay.evaluation(ModelRef()), lay.evaluation(ModelRef(ANY, "individual")),  # merges: scored by select
             lay.selection(ANY), lay.diagnostics(ANY), lay.diagnostics_summary()]
    return {p.as_posix() for p in paths}


def _outs() -> list[str]:
    """dvc.yaml's outs/metrics/plots paths, with every ${item...} placeholder as '*'."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = []
    for stage in stages.values():
        body = stage.get("do", stage)
        for key in ("outs", "metrics", "plots"):
            for entry in body.get(key, []):
                path = entry if isinstance(entry, str) else next(iter(entry))
                out.append(re.sub(r"\$\{item(\.[a-z_]+)*\}", ANY, path).replace("seed*", "seed" + ANY))
    return out


def _covers(out: str, path: str) -> bool:
    return path == out or path.startswith(out + "/")


def test_every_dvc_out_is_a_layout_folder_or_inside_one():
    layout = _layout_paths()
    for out in _outs():
        ok = any(_covers(out, p) or _covers(p, out) for p in layout)
        assert ok, f"dvc.yaml out {out} is not a Layout path (osrm_pipeline/layout.py)"


def test_every_layout_artifact_is_an_out_of_dvc_yaml():
    outs = _outs()
    for path in _layout_paths():
        assert any(_covers(o, path) or _covers(path, o) for o in outs), f"Layout path {path} is produced by no dvc.yaml stage"


def test_model_grammar_all_arms():
    """'all/<what>' expands to every arm in config order; a bad arm names the choices."""
    from osrm_core.errors import OsrmError
    from osrm_pipeline.layout import parse_models

    arms, methods = ["lora", "osrm"], ["ties", "task_arithmetic"]
    assert parse_models(["base", "all/individual", "osrm/individual"], arms, methods) == \
        [ModelRef(), ModelRef("lora", "individual"), ModelRef("osrm", "individual")]
    assert parse_models(["all/merges"], arms, methods) == [ModelRef(a, m) for a in arms for m in methods]
    with pytest.raises(OsrmError, match="arm 'all' or one of"):
        parse_models(["nope/individual"], arms, methods)
