"""dvc.yaml is a view of pipeline.yaml: one stage per task/init/method, wired so that a change reruns only what it touches."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        g = repo.index.graph
        names = {s: s.addressing for s in g.nodes}
        return nx.relabel_nodes(g, names)  # edge u -> v: u depends on v


def test_stages_follow_pipeline_yaml(graph):
    cfg = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    tasks, inits = cfg["tasks"], cfg["inits"]
    nodes = set(graph.nodes)
    for t in tasks:
        assert {f"extract@{t}", f"finetune_lora@{t}", f"finetune_osrm@{t}"} <= nodes
    for i in inits:
        assert {f"evaluate_individual@{i}", f"evaluate_merge@{i}", f"merge@{i}"} <= nodes
    assert {"subspace", "report"} <= nodes


def test_edges(graph):
    cfg = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    t0, t1 = cfg["tasks"][:2]
    succ = lambda n: set(graph.successors(n))  # noqa: E731 - what n depends on
    # a subspace needs every task's features (leave-one-out), never recomputes them
    assert {f"extract@{t}" for t in cfg["tasks"]} <= succ("subspace")
    # plain LoRA does not depend on the subspaces; OSRM only on its own task's folder of them
    assert "subspace" not in succ(f"finetune_lora@{t0}") and "subspace" in succ(f"finetune_osrm@{t0}")
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert "${workdir}/subspaces/${item}" in dvc["stages"]["finetune_osrm"]["do"]["deps"]
    # the merges of one init depend on that init's adapters only (plus the features, for RegMean's Grams)
    merge_deps = succ("merge@osrm")
    assert f"finetune_osrm@{t1}" in merge_deps and not any(s.startswith("finetune_lora@") for s in merge_deps)
    assert f"extract@{t0}" in merge_deps
    assert {f"evaluate_merge@{i}" for i in cfg["inits"]} <= succ("report")
    assert "merge@osrm" in succ("evaluate_merge@osrm") and "merge@gaussian" not in succ("evaluate_merge@osrm")


def test_per_task_hparams_are_tracked_per_task():
    """Each finetune stage tracks only its own task's entry of the hparams file."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for family in ("finetune_lora", "finetune_osrm"):
        params = dvc["stages"][family]["do"]["params"]
        assert {"${finetune.hparams_file}": ["${item}"]} in params
    cfg = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    import json

    hp = json.loads((REPO / cfg["finetune"]["hparams_file"]).read_text())
    assert set(cfg["tasks"]) <= set(hp)  # DVC needs every tracked key to exist


def _param_keys(dvc: dict) -> set[str]:
    """Every `pipeline.yaml:` param key any stage of dvc.yaml tracks (foreach/matrix bodies included)."""
    keys = set()
    for stage in dvc["stages"].values():
        for entry in stage.get("do", stage).get("params", []):
            if isinstance(entry, dict) and "pipeline.yaml" in entry:
                keys |= set(entry["pipeline.yaml"])
            elif isinstance(entry, str):
                keys.add(entry)
    return keys


def test_every_tracked_param_exists_in_pipeline_yaml():
    """DVC refuses to run a stage whose param key is missing from the file, even if pydantic has a default:
    every key dvc.yaml tracks must be spelled out in pipeline.yaml."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    cfg = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    keys = _param_keys(dvc)
    assert "merge.fisher_labels" in keys  # the collector sees foreach bodies
    for key in sorted(keys):
        if "${" in key:
            key = key.split(".${", 1)[0]  # merge.methods.${item.method}: the prefix must exist
        node = cfg
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"dvc.yaml tracks {key!r}, missing from pipeline.yaml"
            node = node[part]
