"""Bad-input battery (issue 6): every case must give a one-line `error:` naming the field or file and the
fix, a non-zero exit, no traceback, nothing partial written and nothing that was there before lost."""

from __future__ import annotations

import errno
import json
import shutil

import numpy as np
import pytest
import yaml
import zarr

from rel_lib import leftovers, snapshot, write_adapter
from tests.conftest import TINY_TASKS

T0, T1 = TINY_TASKS[0], TINY_TASKS[1]


def _cfg_text(w, text):
    w.cfg.write_text(text)
    return ["build-subspace", "-c", w.cfg, "--task", T0]


def _subspace(w, **over):
    w.config(**over)
    return ["build-subspace", "-c", w.cfg, "--task", T0]


def _convert(w, **over):
    w.config(**over)
    return ["convert", "project", "-c", w.cfg, "--task", T0, "--adapter", w.root / "adapters/seed42/lora" / T0, "--out", w.tmp / "conv"]


def _merge(w, method="task_arithmetic"):
    return ["merge", "-c", w.cfg, "--arm", "lora", "--method", method]


def _corrupt(path, keep=None, garbage=b"\x00garbage"):
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep is not None else garbage + data[len(garbage):])


def _rewrite_manifest(folder):
    """Re-sign an artifact after editing it (simulates a stage that itself wrote bad values)."""
    from stages.io.artifacts import KINDS

    m = json.loads((folder / "manifest.json").read_text())
    extra = {k: v for k, v in m.items() if k not in {"schema_version", "stage", "created", "config", "config_hash", "upstream",
                                                       "versions", "python", "git_commit", "files", "content_hash"}}
    (folder / "manifest.json").unlink()
    KINDS[m["stage"]].seal(folder, m["config"], m["upstream"], **extra)


def _poison_features(w, value, kind="sample_mean"):
    folder = w.root / "features/seed42" / T1
    g = zarr.open_group(str(folder / "features.zarr"), mode="r+")
    name = g.attrs["modules"][0]
    arr = g[f"{kind}/{g.attrs['aliases'][name]}"]
    data = arr[...]
    data.flat[3] = value
    arr[...] = data
    _rewrite_manifest(folder)


def _bad_backbone(w, mp, edit):
    src = yaml.safe_load(w.backbone.read_text())
    model = w.tmp / "model"
    shutil.copytree(src["source"], model)
    edit(model)
    spec = w.tmp / "bb.yaml"
    spec.write_text(yaml.safe_dump({**src, "source": str(model)}))
    w.config(backbone=str(spec))
    return ["build-subspace", "-c", w.cfg, "--task", T0]


def _patch_task(w, mp, edit):
    import osrm_pipeline.suites as suites
    from osrm_pipeline.suites import registry

    def fake(*a, **k):
        spec, data = registry.load_task(*a, **k)
        return spec, edit(data)

    mp.setattr(suites, "load_task", fake, raising=False)
    return ["extract-features", "-c", w.cfg, "--task", T0]


def _relabel(split, label):
    def edit(data):
        data[split] = data[split].map(lambda r: {"label": label})
        return data
    return edit


def _empty(split):
    def edit(data):
        data[split] = data[split].select([])
        return data
    return edit


def _mismatch_adapter(w, **kw):
    write_adapter(w.tmp, "lora", T1, w.cfg, **kw)
    return _merge(w)


def _full_disk(w, mp):
    import stages.build_subspace as bs

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    mp.setattr(bs, "save_file", boom)
    return ["build-subspace", "-c", w.cfg, "--task", T0]


def _not_writable(w, mp):
    import stages.io.atomic as atomic

    real = atomic.os.access
    mp.setattr(atomic.os, "access", lambda p, mode: False if mode == atomic.os.W_OK else real(p, mode))
    return ["build-subspace", "-c", w.cfg, "--task", T0]


def _interrupt(w, mp):
    from stages.io.artifacts import Subspace

    def stop(*a, **k):
        raise KeyboardInterrupt
    mp.setattr(Subspace, "seal", stop)
    return ["build-subspace", "-c", w.cfg, "--task", T0]


CASES = [
    # --- config problems
    ("malformed-yaml", lambda w, mp: _cfg_text(w, "tasks: [a, b\nlora: {rank: 4\n"), ["malformed YAML", "line", "fix the syntax"]),
    ("yaml-not-mapping", lambda w, mp: _cfg_text(w, "- a\n- b\n"), ["expected a mapping"]),
    ("missing-config", lambda w, mp: ["build-subspace", "-c", w.tmp / "nope.yaml", "--task", T0], ["nope.yaml", "does not exist"]),
    ("unknown-key-typo", lambda w, mp: _subspace(w, sede=1), ["unknown key 'sede'", "spelling"]),
    ("unknown-nested-key", lambda w, mp: _subspace(w, lora={"rnak": 4}), ["lora.rnak", "spelling"]),
    ("wrong-type-int", lambda w, mp: _subspace(w, lora={"rank": "four"}), ["lora.rank", "fix that value"]),
    ("wrong-type-bool", lambda w, mp: _subspace(w, osrm={"include_padding": "maybe"}), ["osrm.include_padding"]),
    ("unknown-estimator", lambda w, mp: _subspace(w, osrm={"estimator": "pca"}), ["osrm.estimator", "sample-mean"]),
    ("unknown-task-in-config", lambda w, mp: _subspace(w, tasks=[T0, "nope"]), ["'nope'", "valid tasks"]),
    ("unknown-task-flag", lambda w, mp: ["build-subspace", "-c", w.cfg, "--task", "nope"], ["--task 'nope'", "pick one"]),
    ("unknown-method-flag", lambda w, mp: _merge(w, "tiess"), ["'tiess'", "one of"]),
    ("unknown-method-config", lambda w, mp: _subspace(w, merge={"methods": {"tiez": {}}}), ["merge.methods", "'tiez'", "use one of"]),
    ("bad-method-param", lambda w, mp: (w.config(merge={"methods": {"ties": {"density": 2.0}}}), _merge(w, "ties"))[1], ["merge.methods.ties.density"]),
    ("duplicate-tasks", lambda w, mp: _subspace(w, tasks=[T0, T1, T0]), ["duplicate task names", T0]),
    ("k-below-rank", lambda w, mp: _subspace(w, osrm={"k": 2}), ["osrm.k=2", "lora.rank=4", "raise osrm.k"]),
    ("malformed-hparams-file", lambda w, mp: ((w.tmp / "hp.json").write_text("{oops"), w.config(finetune={"hparams_file": str(w.tmp / "hp.json")}),
                                              ["finetune", "-c", w.cfg, "--task", T0, "--arm", "lora"])[2], ["hp.json", "malformed JSON"]),
    ("hparams-wrong-type", lambda w, mp: ((w.tmp / "hp.json").write_text('{"default": {"epochs": "two"}}'),
                                          w.config(finetune={"hparams_file": str(w.tmp / "hp.json")}),
                                          ["finetune", "-c", w.cfg, "--task", T0, "--arm", "lora"])[2], ["hp.json", "default.epochs", "positive number"]),
    # --- missing or damaged inputs
    ("missing-backbone-name", lambda w, mp: _subspace(w, backbone="no-such-model"), ["'no-such-model' not found", "use one of"]),
    ("missing-backbone-folder", lambda w, mp: _bad_backbone(w, mp, shutil.rmtree), ["model", "does not exist", "fix `source`"]),
    ("unreadable-backbone-config", lambda w, mp: _bad_backbone(w, mp, lambda m: (m / "config.json").write_text("{not json")),
     ["config.json", "damaged", "fix `source`"]),
    ("damaged-backbone-weights", lambda w, mp: _bad_backbone(w, mp, lambda m: _corrupt(m / "model.safetensors", garbage=b"\xff" * 16)),
     ["model.safetensors", "damaged"]),
    ("missing-upstream-features", lambda w, mp: (shutil.rmtree(w.root / "features/seed42" / T1), _subspace(w))[1], ["features", "osrm extract-features --task"]),
    ("damaged-manifest", lambda w, mp: ((w.root / "features/seed42" / T1 / "manifest.json").write_text("{"), _subspace(w))[1], ["manifest.json", "not JSON"]),
    ("corrupted-subspace-safetensors", lambda w, mp: (_corrupt(w.root / "subspaces/seed42/osrm" / T0 / "subspace.safetensors", keep=100), _convert(w))[1],
     ["subspace.safetensors", "corrupted or truncated", "osrm build-subspace"]),
    ("corrupted-adapter-safetensors", lambda w, mp: (_corrupt(w.root / "adapters/seed42/lora" / T1 / "adapter_model.safetensors"), _merge(w))[1],
     ["adapter_model.safetensors", "corrupted or truncated", "osrm finetune --task"]),
    ("truncated-zarr-shard", lambda w, mp: (_corrupt(next(p for p in sorted((w.root / "features/seed42" / T1 / "features.zarr").rglob("c/*")) if p.is_file()), keep=10),
                                            _subspace(w))[1], ["features.zarr", "corrupted or truncated", "extract-features"]),
    ("nan-in-features", lambda w, mp: (_poison_features(w, np.nan), _subspace(w))[1], ["NaN/Inf", "extract-features"]),
    ("inf-in-token-gram", lambda w, mp: (_poison_features(w, np.inf, "gram"), _subspace(w, osrm={"estimator": "token"}))[1], ["NaN/Inf", "extract-features"]),
    # --- data and shape problems
    ("rank-ge-d_in", lambda w, mp: _subspace(w, lora={"rank": 32}, osrm={"k": 32}), ["lora.rank=32", "d_in=32", "lower lora.rank"]),
    ("empty-split", lambda w, mp: _patch_task(w, mp, _empty("validation")), ["split 'validation' is empty", T0]),
    ("empty-train", lambda w, mp: _patch_task(w, mp, _empty("train")), ["split 'train' is empty"]),
    ("single-class-train", lambda w, mp: _patch_task(w, mp, _relabel("train", 0)), ["single class", ">= 2 classes"]),
    ("label-out-of-range", lambda w, mp: _patch_task(w, mp, _relabel("test", 7)), ["label 7", "outside 0..1", "suite YAML"]),
    ("merge-mismatched-targets", lambda w, mp: _mismatch_adapter(w, blocks="qkv"), ["targets differ", "lora.blocks"]),
    ("merge-mismatched-base", lambda w, mp: _mismatch_adapter(w, weights="0" * 64), ["backbone", "same backbone"]),
    ("subspace-other-backbone", lambda w, mp: (_edit_manifest(w.root / "subspaces/seed42/osrm" / T0, backbone={"name": "x", "weights": "0" * 64}), _convert(w))[1],
     ["backbone", "osrm build-subspace --arm osrm --task"]),
    ("subspace-other-layer-set", lambda w, mp: _convert(w, lora={"blocks": "qkv"}), ["layer set", "lora.blocks"]),
    ("subspace-other-estimator", lambda w, mp: _convert(w, osrm={"estimator": "token"}), ["osrm.estimator", "'sample-mean'", "osrm build-subspace"]),
    ("features-other-padding", lambda w, mp: _subspace(w, osrm={"include_padding": True}), ["osrm.include_padding", "extract-features"]),
    ("features-other-k", lambda w, mp: _subspace(w, osrm={"k": 24}), ["osrm.k", "extract-features"]),
    # --- write failures
    ("output-under-a-file", lambda w, mp: ((w.tmp / "afile").write_text("x"), _convert(w))[1][:-1] + [w.tmp / "afile" / "out"],
     ["cannot create output folder", "afile", "writable"]),
    ("output-not-writable", _not_writable, ["not writable", "subspaces", "permissions"]),
    ("disk-full", _full_disk, ["disk full", "subspaces", "free space"]),
]


def _edit_manifest(folder, **fields):
    m = json.loads((folder / "manifest.json").read_text())
    m.update(fields)
    (folder / "manifest.json").write_text(json.dumps(m))


def _check_error(res, expect, code=2):
    out = res.output.strip()
    assert res.exit_code == code, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(("error:", "interrupted")), out
    assert code != 2 or " — " in lines[0] or "; " in lines[0], f"no fix in: {out}"
    for s in expect:
        assert s in out, f"{s!r} not in {out!r}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, work, cli, monkeypatch):
    _, setup, expect = case
    argv = setup(work, monkeypatch)
    before = snapshot(work.tmp)
    res = cli(*argv, ok=False)
    _check_error(res, expect)
    assert snapshot(work.tmp) == before, "a failing stage changed files"
    assert leftovers(work.tmp) == []


def test_interrupted_write_keeps_previous(work, cli, monkeypatch):
    """Ctrl-C (or a crash) during the final write: exit 130, previous subspace intact, no temp folder."""
    argv = _interrupt(work, monkeypatch)
    before = snapshot(work.tmp)
    res = cli(*argv, ok=False)
    _check_error(res, ["interrupted", "nothing partial"], code=130)
    assert snapshot(work.tmp) == before
    assert leftovers(work.tmp) == []
