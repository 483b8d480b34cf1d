"""`osrm extract-features`: inputs of every target linear layer over k samples of a task -> zarr cache."""

from __future__ import annotations

from pathlib import Path

import torch

from osrm_core.batching import iterate, shuffled
from osrm_core.errors import OsrmError
from osrm_core.features import capture, target_module_names
from osrm_core.models import load_classifier, load_tokenizer
from osrm_core.tasks import task_fingerprint
from stages.io import feature_store
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.manifest import write_manifest
from stages.io.options import CONFIG, TASK, WORKDIR
from stages.io.run import open_run


def sample_indices(n_train: int, k: int, seed: int) -> list[int]:
    """The k training rows whose features are taken (seeded, independent of everything else)."""
    if n_train < 2:
        raise OsrmError(f"train split has {n_train} rows — a task needs at least 2 to estimate features")
    return sorted(shuffled(n_train, seed)[: min(k, n_train)])


@torch.no_grad()
def collect(model, tokenizer, ds, fields, names, osrm_cfg, max_length, desc):
    """Run the frozen model over ds; returns the FeatureCapture with per-layer statistics."""
    with capture(model, names, include_padding=osrm_cfg.include_padding) as cap:
        batches = iterate(tokenizer, ds, fields, osrm_cfg.batch_size, max_length, pad_to_max=osrm_cfg.include_padding)
        for inputs, _ in progress(batches, desc, total=-(-len(ds) // osrm_cfg.batch_size)):
            cap.new_batch(inputs["attention_mask"])
            model(**inputs)
    return cap


@guarded
def main(config: Path = CONFIG, task: str = TASK, workdir: Path = WORKDIR) -> None:
    """Capture the inputs of every target layer (padding masked) over k train samples of TASK.

    Writes <workdir>/features/<task>/features.zarr (sample-mean rows, token Gram, token count per layer)
    and a manifest. Features are computed once per task and reused by every subspace and by RegMean.
    """
    run = open_run(config, {"workdir": str(workdir) if workdir else None})
    run.check_task(task)
    spec, data = run.load_task(task)
    cfg = run.cfg
    idx = sample_indices(len(data["train"]), cfg.osrm.k, cfg.osrm.seed)
    rows = data["train"].select(idx)
    tokenizer = load_tokenizer(run.spec)
    model = load_classifier(run.spec, spec.num_labels)
    names = target_module_names(model, run.spec.target_suffixes(cfg.lora.blocks))
    if not names:
        raise OsrmError(f"backbone '{run.spec.name}': no linear layer matches targets for blocks '{cfg.lora.blocks}' — fix `targets` in its YAML")
    cap = collect(model, tokenizer, rows, spec.text_fields, names, cfg.osrm, cfg.data.max_length, f"features {task}")
    owned = cap.canonical_stats()
    modules = {n: owned[n].sample_means().shape[1] for n in owned}
    out = run.layout.features(task)
    with atomic_dir(out) as tmp:
        feature_store.create(tmp, modules, cap.alias, len(idx), world=1)
        feature_store.write_shard(tmp, 0, 0, {n: s.sample_means() for n, s in owned.items()},
                                  {n: s.gram for n, s in owned.items()}, {n: s.count for n, s in owned.items()})
        write_manifest(tmp, "extract-features", {"osrm": cfg.osrm.model_dump(), "data": cfg.data.model_dump(),
                       "lora.blocks": cfg.lora.blocks, "suite": cfg.suite, "task": task, "seed": cfg.seed},
                       upstream={"data": task_fingerprint(cfg.suite, task, cfg.seed, cfg.data.data_dir)},
                       backbone=run.backbone_identity(), modules=names, dims=modules, k=len(idx),
                       include_padding=cfg.osrm.include_padding)
    print(f"features: {out} ({len(names)} layers, k={len(idx)})")
