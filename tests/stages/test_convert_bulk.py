"""`osrm convert project --map`: third-party PEFT adapters (rsLoRA, rank/alpha patterns, one saved without
its head) imported or projected into an arm, then merged and scored as if the pipeline had trained them.
The dense updates are checked against PEFT's own `merge_and_unload()`; bad input fails in one line."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file

from stages.io.adapters import Adapter
from tests.conftest import TINY_TASKS, Cli, tiny_pipeline
from tests.peft_reference import merged_delta
from tests.reliability.rel_lib import snapshot

RSLORA, PATTERN, HEADLESS = TINY_TASKS
Q0 = "bert.encoder.layer.0.attention.self.query"
CONFIGS = {  # every adapter has global r = 4 (check_compatible: one rank per merge)
    RSLORA: dict(r=4, lora_alpha=8, use_rslora=True),
    PATTERN: dict(r=4, lora_alpha=8, rank_pattern={"layer.0.attention.self.query": 2}, alpha_pattern={"value": 32}),
    HEADLESS: dict(r=4, lora_alpha=4),
}


def _peft_model(run, task: str, cfg: dict, head: bool, seed: int):
    """A PEFT LoRA on the tiny classifier with random A and B (and head), as someone else would train it."""
    from osrm_core.models import load_classifier

    torch.manual_seed(seed)
    base = load_classifier(run.spec, run.load_task(task)[0].num_labels)
    lcfg = LoraConfig(target_modules=["query", "value"], init_lora_weights=False, task_type="SEQ_CLS" if head else None, **cfg)
    model = get_peft_model(base, lcfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "classifier" in n:
                p.normal_()
    return model


@pytest.fixture(scope="module")
def third(tmp_path_factory, tiny_backbone):
    """(cli, config, root, {task: PEFT's dense update}): features, the 'ext' arm's subspaces, three PEFT
    adapters under root/peft/ and a head-only donor for the headless one."""
    from osrm_pipeline.run import open_run

    root = tmp_path_factory.mktemp("convert-bulk")
    cfg = tiny_pipeline(root / "runs", tiny_backbone, arms={"ext": {"init": "osrm"}, "raw": {"init": "gaussian"},
                                                              "ext_rs": {"init": "osrm", "lora": {"rslora": True}}}, reference="raw")
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = Cli()
    for t in TINY_TASKS:
        cli("extract-features", "-c", path, "--task", t)
    cli("build-subspace", "-c", path, "--task", "all", "--arm", "ext", "--arm", "ext_rs")
    run, refs = open_run(path), {}
    for i, (task, c) in enumerate(CONFIGS.items()):
        model = _peft_model(run, task, c, head=task != HEADLESS, seed=i)
        model.save_pretrained(root / "peft" / task)
        refs[task] = merged_delta(model)
    _peft_model(run, HEADLESS, CONFIGS[HEADLESS], head=True, seed=9).save_pretrained(root / "peft" / "donor")
    mapping = {RSLORA: f"peft/{RSLORA}", PATTERN: str(root / "peft" / PATTERN),
               HEADLESS: {"adapter": f"peft/{HEADLESS}", "head": "peft/donor"}}
    (root / "map.yaml").write_text(yaml.safe_dump(mapping))
    (root / "map.json").write_text(json.dumps(mapping))
    return cli, path, root, refs


def test_import_matches_peft(third):
    """--no-project: s B A of each imported adapter equals PEFT's merged weight delta; PEFT reloads it alike."""
    cli, path, root, refs = third
    cli("convert", "project", "-c", path, "--arm", "raw", "--map", root / "map.json", "--no-project")
    for task, ref in refs.items():
        folder = root / "runs/adapters/seed42/raw" / task
        ad = Adapter(folder)
        assert json.loads((folder / "manifest.json").read_text())["init"] == "imported"
        for m, d in ref.items():
            torch.testing.assert_close(ad.delta(m), d, atol=1e-5, rtol=0)
        assert any("classifier" in k for k in ad.head())  # the headless one took the donor's head
    assert Adapter(root / "runs/adapters/seed42/raw" / PATTERN).factors(Q0)[0].shape[0] == 2
    # PEFT reads our rewritten config (rank/alpha patterns, rslora) to the same update
    from osrm_core.models import load_classifier
    from osrm_pipeline.run import open_run

    run = open_run(path)
    for task in (RSLORA, PATTERN):
        base = load_classifier(run.spec, run.load_task(task)[0].num_labels)
        peft = PeftModel.from_pretrained(base, str(root / "runs/adapters/seed42/raw" / task))
        for m, d in merged_delta(peft).items():
            torch.testing.assert_close(d, refs[task][m], atol=1e-5, rtol=0)


def test_project_then_merge_and_evaluate(third):
    """Projected adapters: dW A_t^T A_t (dW = PEFT's own delta); then merge, evaluate individual and merges."""
    cli, path, root, refs = third
    cli("convert", "project", "-c", path, "--arm", "ext", "--map", root / "map.yaml")
    for task, ref in refs.items():
        folder = root / "runs/adapters/seed42/ext" / task
        sub = load_file(root / "runs/subspaces/seed42/ext" / task / "subspace.safetensors")
        ad = Adapter(folder)
        for m, d in ref.items():
            a_t = sub[m].float()
            torch.testing.assert_close(ad.delta(m), d @ a_t.T @ a_t, atol=1e-5, rtol=0)
        assert json.loads((folder / "manifest.json").read_text())["init"] == "converted"
    cli("convert", "project", "-c", path, "--arm", "raw", "--map", root / "map.json", "--no-project")
    for arm in ("ext", "raw"):
        cli("merge", "-c", path, "--arm", arm, "--method", "task_arithmetic", "--method", "ties")
    merged = Adapter(root / "runs/merged/seed42/raw/task_arithmetic")  # ranks 4+2+4 at layer-0 query: rank_pattern
    raw = {t: Adapter(root / "runs/adapters/seed42/raw" / t) for t in TINY_TASKS}
    torch.testing.assert_close(merged.delta(Q0), 0.5 * sum(a.delta(Q0) for a in raw.values()), atol=1e-5, rtol=0)
    cli("evaluate", "-c", path, "--model", "ext/individual", "--model", "ext/ties", "--model", "raw/individual",
        "--model", "raw/task_arithmetic")
    for where in ("individual/ext", "merged/ext/ties", "individual/raw", "merged/raw/task_arithmetic"):
        assert (root / "runs/eval/seed42" / where / "manifest.json").is_file()


@pytest.mark.parametrize("arm", ["ext", "ext_rs"])
def test_single_form_keeps_the_scale(third, arm):
    """`--task --adapter --out` into an rsLoRA arm (s = alpha/sqrt(r)): the written config carries use_rslora, so
    the update is dW A_t^T A_t, not shrunk by sqrt(r); --head-from supplies a missing head."""
    cli, path, root, refs = third
    out = root / f"single-{arm}"
    cli("convert", "project", "-c", path, "--task", HEADLESS, "--arm", arm, "--adapter", root / "peft" / HEADLESS,
        "--head-from", root / "peft" / "donor", "--out", out)
    sub = load_file(root / "runs/subspaces/seed42" / arm / HEADLESS / "subspace.safetensors")
    ad = Adapter(out)
    assert ad.config["use_rslora"] is (arm == "ext_rs")
    for m, d in refs[HEADLESS].items():
        torch.testing.assert_close(ad.delta(m), d @ sub[m].float().T @ sub[m].float(), atol=1e-5, rtol=0)
    assert ad.head().keys() == Adapter(root / "peft" / "donor").head().keys()


def test_every_merge_method_accepts_per_task_ranks():
    """ModuleUpdates with r_t = 2, 5, 3: the low-rank sum is exact, and every registered method runs."""
    from osrm_core.merge import METHODS, get_method, parse_params
    from osrm_core.merge.types import ModuleUpdates

    g = torch.Generator().manual_seed(0)
    ranks, d_out, d_in = [2, 5, 3], 12, 10
    x = [torch.randn(20, d_in, generator=g) for _ in ranks]
    u = ModuleUpdates(A=[torch.randn(r, d_in, generator=g) for r in ranks], B=[torch.randn(d_out, r, generator=g) for r in ranks],
                      scale=[2.0, 0.5, 1.0], grams=[v.T @ v for v in x], counts=[20] * 3, base=torch.randn(d_out, d_in),
                      fishers=[torch.rand(d_out, d_in, generator=g) for _ in ranks])
    a, b = u.concat_factors([1.0, 1.0, 1.0])
    torch.testing.assert_close(b @ a, sum(u.deltas()))
    for name in sorted(METHODS):
        m = get_method(name)
        res = m.fn(u, parse_params(m, {}, name), torch.Generator().manual_seed(0))
        out = res.per_task[0] if m.per_task else res.delta
        assert out.shape == (d_out, d_in) and torch.isfinite(out).all(), name


def _bad_map(root, name, mapping):
    p = root / f"{name}.json"
    p.write_text(json.dumps(mapping))
    return p


def _other_backbone(root):
    """A PEFT adapter whose query/value factors are 16-wide (a backbone with hidden size 16)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    small = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                                     intermediate_size=32, num_labels=2))
    folder = root / "peft" / "other"
    if not folder.exists():
        get_peft_model(small, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS")).save_pretrained(folder)
    return folder


BAD = [
    ("missing-folder", lambda r: ["--map", _bad_map(r, "missing", {RSLORA: "peft/nope"})], ["peft/nope", "no such adapter folder"]),
    ("unknown-task", lambda r: ["--map", _bad_map(r, "unknown", {"no_such_task": f"peft/{RSLORA}"})], ["'no_such_task'", "not in this pipeline's tasks"]),
    ("other-backbone", lambda r: ["--map", _bad_map(r, "other", {TINY_TASKS[0]: str(_other_backbone(r))})], ["another backbone"]),
    ("no-head", lambda r: ["--map", _bad_map(r, "nohead", {RSLORA: f"peft/{RSLORA}", HEADLESS: f"peft/{HEADLESS}"})], ["no task head", "head: DIR"]),
    ("unknown-arm", lambda r: ["--map", r / "map.json", "--arm", "nope"], ["--arm 'nope'", "arms"]),
    ("project-gaussian-arm", lambda r: ["--map", r / "map.json", "--arm", "raw"], ["no subspace", "--no-project"]),
    ("map-not-mapping", lambda r: ["--map", _bad_map(r, "list", [1, 2])], ["expected a non-empty mapping"]),
    ("entry-typo", lambda r: ["--map", _bad_map(r, "typo", {RSLORA: {"adaptr": "x"}})], ["unknown key 'adaptr'", "{adapter: DIR, head: DIR}"]),
]


@pytest.mark.parametrize("name,args,needles", BAD, ids=[b[0] for b in BAD])
def test_bad_input(third, name, args, needles):
    """One-line error naming the problem, exit 2, nothing written under the workdir."""
    cli, path, root, _ = third
    before = snapshot(root / "runs")
    extra = args(root)
    arm = [] if "--arm" in map(str, extra) else ["--arm", "ext"]
    res = cli("convert", "project", "-c", path, *arm, *extra, ok=False)
    err = res.output.strip()
    assert res.exit_code == 2 and err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    assert snapshot(root / "runs") == before


def test_projection_says_what_it_keeps_and_warns(third):
    """A projection that loses most of a task's own output shift prints one line per task and a warning with the
    numbers; the same numbers are in projection.json (per module and aggregated) and in the manifest."""
    cli, path, root, _ = third
    res = cli("convert", "project", "-c", path, "--arm", "ext", "--map", root / "map.yaml")
    for task in TINY_TASKS:
        folder = root / "runs/adapters/seed42/ext" / task
        kept = json.loads((folder / "manifest.json").read_text())["kept"]
        proj = json.loads((folder / "projection.json").read_text())["kept"]
        assert set(proj["modules"]) == set(Adapter(folder).modules)
        assert kept == {q: proj[q] for q in ("update", "own", "others")}
        assert f"{task}: keeps {kept['own']:.1%} of its output shift on its own tokens" in res.output
        # a rank-4 subspace of a 32-wide layer keeps little of a random full-width update
        assert kept["own"] < 0.5
        warning = f"warning: {task} keeps only {kept['own']:.1%} of its own output shift (< 50%)"
        assert warning in res.output and "init: refit" in res.output and "osrm convert posthoc" in res.output


def test_posthoc_keeps_the_stated_share(third):
    """`convert posthoc`: each adapter keeps >= keep_share of its own output shift (no warning), the other tasks'
    shift drops, the update equals osrm_core.keep.keep_lora on the cached moments, and it merges like any adapter."""
    from osrm_core.keep import keep_lora
    from osrm_pipeline.run import open_run
    from stages.io.derived import Moments

    cli, path, root, _ = third
    res = cli("convert", "posthoc", "-c", path, "--arm", "raw", "--map", root / "map.json", "--share", "0.8")
    assert "warning" not in res.output
    moments = Moments(open_run(path))
    for task in TINY_TASKS:
        folder = root / "runs/adapters/seed42/raw" / task
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["init"] == "posthoc" and manifest["kept"]["own"] >= 0.8 - 1e-6
        assert manifest["kept"]["others"] < 1.0
        src, out = Adapter(root / "peft" / task), Adapter(folder)
        a, b = src.factors(Q0)
        ref = keep_lora(a, b, src.scale, *moments.of(task, Q0), share=0.8)
        torch.testing.assert_close(out.delta(Q0), src.scale * ref.b @ ref.a, atol=1e-5, rtol=0)
    cli("merge", "-c", path, "--arm", "raw", "--method", "task_arithmetic")


@pytest.mark.parametrize("share", ["0", "1.5"])
def test_posthoc_bad_share(third, share):
    cli, path, root, _ = third
    before = snapshot(root / "runs")
    res = cli("convert", "posthoc", "-c", path, "--arm", "raw", "--map", root / "map.json", "--share", share, ok=False)
    err = res.output.strip()
    assert res.exit_code == 2 and err.startswith("error:") and "--share" in err and "\n" not in err, err
    assert snapshot(root / "runs") == before
