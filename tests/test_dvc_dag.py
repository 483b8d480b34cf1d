"""dvc.yaml is a view of pipeline.yaml: one stage per seed or (seed, arm), each running every task in one process,
wired so that a change reruns only what it touches."""

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
    tasks, arms, seeds = cfg["tasks"], list(cfg["arms"]), cfg["seeds"]
    nodes = set(graph.nodes)
    for s in seeds:
        for a in arms:
            assert {f"finetune@{s}-{a}", f"merge@{s}-{a}", f"select@{s}-{a}", f"diagnose@{s}-{a}"} <= nodes
        assert {f"extract@{s}", f"subspace@{s}", f"evaluate@{s}"} <= nodes
    assert "report" in nodes
    # fewer, fuller processes: no stage instance per task (each runs `--task all`)
    assert not [n for n in nodes if any(n.endswith(f"-{t}") for t in tasks)]
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "--task all" in dvc["extract"]["cmd"] and "--task all" in dvc["finetune"]["cmd"]
    # the starter project of `osrm init` (configs/starter/dvc.yaml) is a template, not part of this DAG (.dvcignore)
    assert not [n for n in nodes if "starter" in n]


def test_edges(graph):
    cfg = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    s = cfg["seeds"][0]
    succ = lambda n: set(graph.successors(n))  # noqa: E731 - what n depends on
    # a subspace needs every task's features (leave-one-out), never recomputes them
    assert f"extract@{s}" in succ(f"subspace@{s}")
    # each fine-tune depends on its own arm's folder of subspaces only (arms without one get a stable folder)
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert "${workdir}/subspaces/seed${item.seed}/${item.arm}" in dvc["stages"]["finetune"]["deps"]
    assert succ(f"finetune@{s}-osrm") == {f"subspace@{s}"}
    # the merges of one arm depend on that arm's adapters only (plus the features, for RegMean's Grams)
    assert succ(f"merge@{s}-osrm") == {f"finetune@{s}-osrm", f"extract@{s}"}
    assert {f"evaluate@{s}"} | {f"select@{s}-{a}" for a in cfg["arms"]} <= succ("report")
    # one process scores the pretrained body and every arm's individual adapters of a seed
    assert succ(f"evaluate@{s}") == {f"finetune@{s}-{a}" for a in cfg["arms"]}
    # parameters are chosen per arm from that arm's adapters only
    assert succ(f"select@{s}-osrm") == {f"finetune@{s}-osrm", f"extract@{s}"}


def test_each_arm_tracks_only_its_own_overrides():
    """Changing one arm's overrides in pipeline.yaml reruns only that arm's fine-tunes (params arms.<arm>)."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    params = dvc["stages"]["finetune"]["params"][0]["pipeline.yaml"]
    assert "arms.${item.arm}" in params and "arms" not in params


def test_every_task_stage_tracks_the_task_list_and_hparams():
    """A stage running `--task all` reruns when `tasks` changes; finetune tracks the whole hparams file (DVC
    cannot interpolate the task list into its keys), so every task's entry is tracked."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "tasks" in dvc["extract"]["params"][0]["pipeline.yaml"]
    assert "tasks" in dvc["finetune"]["params"][0]["pipeline.yaml"]
    assert {"${finetune.hparams_file}": None} in dvc["finetune"]["params"]
    cfg = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    import json

    hp = json.loads((REPO / cfg["finetune"]["hparams_file"]).read_text())
    assert set(cfg["tasks"]) <= set(hp)  # a task without hparams would fail the stage


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
