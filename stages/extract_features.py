"""`osrm extract-features`: inputs of every target linear layer over k samples of each task -> zarr cache.

k is the config's feature_k: the largest osrm.k of the config and of its arms; an arm with a smaller k uses the
first k rows of the seeded draw (stages/io/feature_store.py, docs/regimes.md). The token Grams of up to k rows of the
validation split are stored beside them (held-out: no subspace is built from them), for `osrm diagnose`'s held-out
interference and energy shares (docs/diagnostics.md, "Held-out and in-sample")."""

from __future__ import annotations

from pathlib import Path

import torch

from osrm_core import distributed
from osrm_core.batching import shuffled
from osrm_core.errors import OsrmError
from osrm_core.features import capture, target_module_names
from osrm_core.models import load_tokenizer
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline.run import open_run
from osrm_pipeline.suites import task_fingerprint
from stages.io import feature_store
from stages.io.artifacts import Features
from stages.io.atomic import atomic_dir
from stages.io.guard import guarded, progress
from stages.io.options import CONFIG, SEED, TASKS, WORKDIR, expand_all, run_overrides


#: the split whose rows give the held-out Grams: never a subspace's, and not the reported test split
HELDOUT_SPLIT = "validation"


def heldout_indices(n_rows: int, k: int, seed: int) -> list[int]:
    """The held-out rows whose token Grams are stored: the first min(k, n) of a seeded permutation, ascending."""
    return sorted(shuffled(n_rows, seed)[: min(k, n_rows)])


def sample_indices(n_train: int, k: int, seed: int) -> list[int]:
    """The k training rows whose features are taken (seeded, independent of everything else)."""
    return sample_draw(n_train, k, seed)[0]


def sample_draw(n_train: int, k: int, seed: int) -> tuple[list[int], list[int]]:
    """(the k sampled training rows in ascending order, each one's position in the seeded draw).

    The sample is the first min(k, n) entries of a seeded permutation of the train rows, so the rows whose
    draw position is < k' are exactly the sample of a run with osrm.k = k' (an arm with a smaller k; docs/regimes.md)."""
    if n_train < 2:
        raise OsrmError(f"train split has {n_train} rows — a task needs at least 2 to estimate features")
    drawn = shuffled(n_train, seed)[: min(k, n_train)]
    position = {row: i for i, row in enumerate(drawn)}
    idx = sorted(drawn)
    return idx, [position[row] for row in idx]


@torch.no_grad()
def collect(model, tokenizer, ds, spec, names, osrm_cfg, max_length, desc):
    """Run the frozen model over ds (the task kind's inputs: texts, or prompt + target tokens); returns the
    FeatureCapture with per-layer statistics."""
    with capture(model, names, include_padding=osrm_cfg.include_padding) as cap:
        batches = kind_of(spec).feature_batches(tokenizer, ds, spec, osrm_cfg.batch_size, max_length, osrm_cfg.include_padding)
        for inputs, _ in progress(batches, desc, total=-(-len(ds) // osrm_cfg.batch_size)):
            cap.new_batch(inputs["attention_mask"])
            model(**inputs)
    return cap


def _plan(run, task: str, k: int, world: int, heldout: int) -> dict:
    """What a staging folder was made for: a mismatch restarts it, a match lets finished shards stand."""
    return {"config": run.cfg.digest("backbone", "suite", "seed", "data", "osrm"), "blocks": run.cfg.lora.blocks,
            "task": task, "k": k, "world": world, "backbone": run.backbone_identity()["weights"],
            "heldout": {"split": HELDOUT_SPLIT, "rows": heldout}}


def _capture_block(run, task, spec, rows, model, tokenizer, names):
    """(rows per module k_r x d_in, gram d_in x d_in, count, aliases, dims) of this rank's block of samples."""
    cfg = run.cfg
    cap = collect(model, tokenizer, rows, spec, names, cfg.osrm, cfg.data.max_length, f"features {task}")
    owned = cap.canonical_stats()
    dims = {n: owned[n].sample_means().shape[1] for n in owned}
    return ({n: s.sample_means() for n, s in owned.items()}, {n: s.gram for n, s in owned.items()},
            {n: s.count for n, s in owned.items()}, cap.alias, dims)


def _capture_grams(run, task, spec, rows, model, tokenizer, names) -> tuple[dict, dict]:
    """(gram d_in x d_in, count) per canonical module of held-out rows: the same capture as the training sample's."""
    cfg = run.cfg
    cap = collect(model, tokenizer, rows, spec, names, cfg.osrm, cfg.data.max_length, f"held-out features {task}")
    owned = cap.canonical_stats()
    return {n: s.gram for n, s in owned.items()}, {n: s.count for n, s in owned.items()}


def _empty_block(stage) -> tuple[dict, dict, dict]:
    """A rank without samples (k < world) still fills its Gram/count slot with zeros."""
    d = feature_store.dims(stage)
    return ({n: torch.empty(0, v) for n, v in d.items()}, {n: torch.zeros(v, v, dtype=torch.float64) for n, v in d.items()},
            {n: 0 for n in d})


def _load(run, spec):
    tokenizer = load_tokenizer(run.spec)
    model = kind_of(spec).load_model(run.spec, spec)
    names = target_module_names(model, run.spec.target_suffixes(run.cfg.lora.blocks))
    if not names:
        raise OsrmError(f"backbone '{run.spec.name}': no linear layer matches targets for blocks '{run.cfg.lora.blocks}' — fix `targets` in its YAML")
    return model, tokenizer, names


def _publish(run, task: str, stage: Path, idx: list[int], world: int, held: list[int]) -> Path:
    """Rank 0: manifest into the finished staging folder, then rename it into place (atomic)."""
    cfg, out = run.cfg, run.layout.features(task)
    attrs, suite = zarr_attrs(stage), cfg.model_dump(mode="json")["suite"]
    Features.seal(stage, {"osrm": cfg.osrm.model_dump(), "data": cfg.data.model_dump(), "lora.blocks": cfg.lora.blocks,
                          "suite": suite, "task": task, "seed": cfg.seed},
                  upstream={"data": task_fingerprint(run.suite, task, cfg.data.split_seed, cfg.data.data_dir)}, seed=cfg.seed,
                  backbone=run.backbone_identity(), task=task, suite=suite, data=cfg.data.model_dump(),
                  blocks=cfg.lora.blocks, sampling={"k": cfg.feature_k, "include_padding": cfg.osrm.include_padding,
                                                    "seed": cfg.seed},
                  modules=attrs["modules"], dims=attrs["dims"], rows=len(idx), world=world,
                  heldout={"split": HELDOUT_SPLIT, "rows": len(held)})
    with atomic_dir(out) as tmp:
        tmp.rmdir()
        stage.rename(tmp)
    return out


def zarr_attrs(stage: Path) -> dict:
    import zarr

    return zarr.open_group(str(stage / feature_store.STORE), mode="r").attrs.asdict()


@guarded(preload=("transformers.modeling_utils",))  # imported by _load anyway: start-up, not work
def main(config: Path = CONFIG, task: list[str] = TASKS, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Capture the inputs of every target layer (padding masked) over k train samples of each TASK.

    Writes <workdir>/features/seed<seed>/<task>/features.zarr (sample-mean rows, token Gram, token count per layer)
    and a manifest, each task as soon as it is done. Features are computed once per task and reused by every
    subspace and by RegMean. Under torchrun (RANK/WORLD_SIZE set) rank r takes the r-th contiguous block of
    each task's k samples and writes its own rows and Gram slot; a rerun skips ranks whose shard is already complete.
    """
    run = open_run(config, run_overrides(workdir, seed))
    tasks = expand_all(task, run.tasks, run.check_task)
    world = distributed.world_from_env()
    created = distributed.init(world)
    try:
        for name in tasks:
            _extract(run, name, world)
    finally:
        if created:
            distributed.destroy()


def _extract(run, task: str, world) -> None:
    spec, data = run.load_task(task)
    idx, draw = sample_draw(len(data["train"]), run.cfg.feature_k, run.cfg.seed)  # the largest k of any arm
    held = heldout_indices(len(data[HELDOUT_SPLIT]), run.cfg.feature_k, run.cfg.seed)
    stage = run.layout.features_staging(task)
    if world.main:
        feature_store.prepare(stage, _plan(run, task, len(idx), world.size, len(held)))
    distributed.barrier()
    done = feature_store.shard_done(stage, world.rank)
    start, stop = distributed.block(len(idx), world.rank, world.size)
    h_start, h_stop = distributed.block(len(held), world.rank, world.size)
    held_block = None
    if done:
        print(f"features {task}: shard {world.rank} is complete, skipping it")
    elif stop > start or h_stop > h_start:
        model, tokenizer, names = _load(run, spec)
        if stop > start:
            rows, grams, counts, aliases, dims = _capture_block(run, task, spec, data["train"].select(idx[start:stop]), model, tokenizer, names)
            if world.main and not feature_store.created(stage):
                feature_store.create(stage, dims, aliases, len(idx), world=world.size, draw=draw,
                                     heldout={"split": HELDOUT_SPLIT, "rows": len(held)})
        if h_stop > h_start:
            held_block = _capture_grams(run, task, spec, data[HELDOUT_SPLIT].select(held[h_start:h_stop]), model, tokenizer, names)
    distributed.barrier()  # the store exists now (rank 0 always has samples, k >= 2 > 0)
    if not done:
        if stop <= start:
            rows, grams, counts = _empty_block(stage)
        if held_block is None:
            held_block = _empty_block(stage)[1:]
        feature_store.write_shard(stage, world.rank, start, rows, grams, counts, heldout=held_block)
        feature_store.mark_done(stage, world.rank)
    distributed.barrier()
    if world.main:
        out = _publish(run, task, stage, idx, world.size, held)
        print(f"features: {out} ({len(zarr_attrs(out)['modules'])} modules, k={len(idx)}, {world.size} rank shard(s))")
