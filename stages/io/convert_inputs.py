"""What `osrm convert` reads: a task -> adapter mapping file, third-party PEFT adapters (and where their head
comes from), dense fine-tuned checkpoints, and the checks that they fit this backbone and task."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from osrm_core.errors import OsrmError
from osrm_core.models import head_module_names
from osrm_core.tasks.kinds import kind_of
from stages.io.adapters import Adapter


class MapEntry(BaseModel):
    """One task's entry of a `--map` file (a bare string is `adapter`); relative paths are from the file's folder."""

    model_config = ConfigDict(extra="forbid")
    adapter: Path = Field(..., description="A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors).")
    head: Path | None = Field(None, description="A PEFT adapter folder whose saved task head to use instead "
                                                "(for an adapter saved without its head, or to replace it).")


def read_map(path: Path, tasks: list[str]) -> dict[str, MapEntry]:
    """{task: MapEntry} from a JSON or YAML mapping file; one-line OsrmError naming the file and task."""
    if not path.is_file():
        raise OsrmError(f"--map {path}: no such file — pass a JSON/YAML mapping task -> adapter folder")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        raise OsrmError(f"--map {path}: not JSON/YAML — write a mapping task -> adapter folder") from None
    if not isinstance(raw, dict) or not raw:
        raise OsrmError(f"--map {path}: expected a non-empty mapping task -> adapter folder (or -> {{adapter, head}})")
    out = {}
    for task, value in raw.items():
        if task not in tasks:
            raise OsrmError(f"--map {path}: task {task!r} is not in this pipeline's tasks {tasks} — fix the name or the config's `tasks`")
        try:
            entry = MapEntry.model_validate({"adapter": value} if isinstance(value, str) else value)
        except ValidationError as err:
            e = next((e for e in err.errors() if e["type"] == "extra_forbidden"), err.errors()[0])  # a typo first
            loc = ".".join(map(str, e["loc"])) or "entry"
            what = f"unknown key {loc!r}" if e["type"] == "extra_forbidden" else f"{loc}: {e['msg']}"
            raise OsrmError(f"--map {path}: task {task!r}: {what} — give a folder or {{adapter: DIR, head: DIR}}") from None
        resolve = lambda p: p if p is None or p.is_absolute() else path.parent / p  # noqa: E731
        out[task] = MapEntry(adapter=resolve(entry.adapter), head=resolve(entry.head))
    return out


def source_adapter(folder: Path, head_from: Path | None, needs_head: bool = True) -> tuple[Adapter, dict]:
    """(the adapter, its head) — the head from `head_from` when given; an error when a task that needs a head (a
    classifier) has none, or when one is given for a task without (a generative task's adapter is LoRA only)."""
    if not folder.is_dir():
        raise OsrmError(f"{folder}: no such adapter folder — fix the path")
    src = Adapter(folder)
    if not needs_head and head_from is not None:
        raise OsrmError(f"head folder {head_from}: this task has no head (a generative task's adapter is LoRA only) — "
                        "drop --head-from / `head:`")
    head = Adapter(head_from).head() if head_from is not None else src.head()
    if needs_head and not head:
        where = f"head folder {head_from}" if head_from is not None else str(folder)
        raise OsrmError(f"{where}: no task head saved (classifier/score) — give an adapter folder with one "
                        "(--head-from DIR, or `head: DIR` in the --map entry)")
    return src, head


class Backbone:
    """Parameter shapes and head modules of the run's backbone as each task's kind builds it (a classifier per label
    count, a causal LM), and the target modules of the arm."""

    def __init__(self, run: Run):
        self.run, self._models = run, {}

    def _model(self, spec) -> tuple[dict[str, tuple[int, ...]], list[str]]:
        """({parameter name: shape}, head module names) of `spec`'s model, built on the meta device (no weights read)."""
        kind = kind_of(spec)
        key = kind.model_key(spec)
        if key not in self._models:
            model = kind.skeleton(self.run.spec, spec)
            self._models[key] = {n: tuple(p.shape) for n, p in model.named_parameters()}, kind.heads(model)
        return self._models[key]

    def needs_head(self, spec) -> bool:
        """Whether `spec`'s adapters carry a task head (classification) or none (generative: the LM head is the backbone's)."""
        return bool(self._model(spec)[1])

    def targets(self, spec) -> list[str]:
        """Module names that the arm's lora.blocks select (PEFT's suffix rule)."""
        suffixes = self.run.spec.target_suffixes(self.run.cfg.lora.blocks)
        names = {n[: -len(".weight")] for n in self._model(spec)[0] if n.endswith(".weight")}
        return sorted(n for n in names if any(n == s or n.endswith("." + s) for s in suffixes))

    def check(self, src: Adapter, head: dict, spec, where: str) -> None:
        """The adapter targets exactly the arm's modules, its factors fit W0, its head fits the task (a task without
        head: the adapter saves no other tensors)."""
        shapes, targets = self._model(spec)[0], self.targets(spec)
        if src.modules != targets:
            odd = sorted(set(src.modules) ^ set(targets))[0]
            raise OsrmError(f"{where}: targets differ from the arm's lora.blocks '{self.run.cfg.lora.blocks}' (e.g. {odd}) — "
                            "set the arm's lora.blocks to the adapter's modules, or use an adapter of this backbone")
        for m in src.modules:
            a, b = src.factors(m)
            d_out, d_in = shapes[f"{m}.weight"]
            if a.shape[1] != d_in or b.shape[0] != d_out:
                raise OsrmError(f"{where}: {m} has A {tuple(a.shape)} / B {tuple(b.shape)}, the backbone's weight is "
                                f"{d_out}x{d_in} — this adapter was trained on another backbone than '{self.run.spec.name}'")
        if head and not self.needs_head(spec):
            raise OsrmError(f"{where}: it also saves {sorted(head)[0]} (modules_to_save) — task '{spec.name}' is generative, "
                            "its adapter is LoRA only; re-save the adapter without modules_to_save")
        for name, t in head.items():
            if shapes.get(name) != tuple(t.shape):
                raise OsrmError(f"{where}: head tensor {name} {tuple(t.shape)} does not fit the backbone's head for "
                                f"{spec.num_labels} labels {shapes.get(name)} — use a head trained for this task and backbone")


def dense_updates(run, folder: Path, modules: list[str], spec):
    """(dW per module (d_out x d_in), head) of a dense fine-tuned checkpoint folder relative to the backbone, both
    loaded as the task's kind builds its model: a classifier with the task's labels (head = its classifier), or the
    causal LM of a generative task (no head: its LM head is the backbone's)."""
    if not (folder / "config.json").is_file():
        raise OsrmError(f"--dense {folder}: not a model folder (no config.json) — pass a save_pretrained() checkpoint")
    base = kind_of(spec).load_model(run.spec, spec)
    try:
        ft = type(base).from_pretrained(str(folder))
    except (OSError, ValueError) as err:
        raise OsrmError(f"--dense {folder}: cannot load it as a {type(base).__name__} ({type(err).__name__}) — pass an "
                        "intact save_pretrained() checkpoint of the task's model") from None
    fnamed, bnamed = dict(ft.named_modules()), dict(base.named_modules())
    missing = [m for m in modules if m not in fnamed]
    if missing:
        raise OsrmError(f"--dense {folder}: no module {missing[0]} — pass a fine-tune of the run's backbone")
    deltas = {m: (fnamed[m].weight - bnamed[m].weight).detach().float() for m in modules}
    head_names = head_module_names(ft) if Backbone(run).needs_head(spec) else []
    head = {n: p.detach() for n, p in ft.named_parameters() if n.split(".")[0] in head_names}
    return deltas, head

