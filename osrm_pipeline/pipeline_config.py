"""One source of truth for every parameter: pydantic models (``extra="forbid"``).

``pipeline.yaml`` is a dump of :class:`PipelineConfig`; each Typer stage reads it and lets a few
flags override fields (the flags are views of these fields, their help text is the field's).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from osrm_core.errors import OsrmError
from osrm_pipeline.suites.own import SuiteField

Init = Literal["gaussian", "kaiming", "osrm", "orthonormal", "refit", "posthoc"]  # osrm_core.lora.INITS: how each one starts A
Freeze = Literal["N", "A", "B"]
Estimator = Literal["sample-mean", "task-mean", "token"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    data_dir: str | None = Field(None, description="Local folder with the suite's files (GLUE stand-ins); null = packaged/hub source.")
    max_train: int | None = Field(None, ge=1, description="Cap on training rows per task (the paper caps GLUE at 105000).")
    max_eval: int | None = Field(None, ge=1, description="Cap on validation rows per task (the paper: 15000); also on test rows unless max_test is set.")
    max_test: int | None = Field(None, ge=1, description="Cap on test rows per task; null = max_eval. Larger test splits give "
                                 "tighter intervals (docs/statistics.md) at the cost of scoring time.")
    max_length: int = Field(128, ge=8, description="Tokenizer truncation length (the paper: 128).")
    split_seed: int = Field(42, description="Seed of the train/validation/test splits of the packaged tasks: fixed across "
                            "`seeds`, so test rows pair across seeds and arms.")


class NormOfArm(Strict):
    match: str = Field(..., description="An arm's name: A_0 gets the Frobenius norm that arm's A_0 has for the module's "
                       "shape (its a_norm number, else the expected norm of its init). Resolved by PipelineConfig.for_arm.")


class NormOfInit(Strict):
    init: Init = Field(..., description="The expected Frobenius norm of this init's A_0 (r x d_in), sqrt(E||A_0||_F^2): "
                       "gaussian sqrt(d_in/r), kaiming sqrt(r/3), osrm and orthonormal sqrt(r) (docs/study.md). "
                       "What {match: <arm>} becomes in that arm's view of the config.")


ANorm = Literal["as_init"] | float | NormOfArm | NormOfInit
A_NORM_FORMS = "'as_init', a positive number (the Frobenius norm of each module's A_0) or {match: <arm name>}"


class LoraConfig(Strict):
    rank: int = Field(8, ge=1, description="LoRA rank r.")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha; scale s = alpha/r (alpha/sqrt(r) with rslora).")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout.")
    blocks: str = Field("qv", description="Target blocks by letter: any of q, k, v, o (e.g. 'qv', 'qkv').")
    rslora: bool = Field(False, description="Rank-stabilised scale alpha/sqrt(r).")
    init: Init = Field("osrm", description="A initialisation, set by each arm's `init`: 'gaussian' (PEFT's plain LoRA, "
                       "A ~ N(0, 1/r^2)), 'kaiming' (PEFT's default init_lora_weights=True: kaiming-uniform A), "
                       "'osrm' (the task's orthogonal subspace) or 'orthonormal' (a seeded random A with orthonormal rows: the control).")
    a_norm: ANorm = Field(
        "as_init", description="Frobenius norm of each LoRA module's initial A, applied after `init` (A_0 <- A_0 * "
        "a_norm / ||A_0||_F, lora_B stays 0): 'as_init' keeps the init's own norm (gaussian ~sqrt(d_in/r), kaiming "
        "~sqrt(r/3), osrm / orthonormal sqrt(r)); a number sets it; {match: <arm>} uses the norm that arm's A_0 has "
        "for the module's shape (its number, else its init's expected norm), so A's direction is compared at equal "
        "scale (docs/study.md, \"The scale confound\").")
    freeze: Freeze = Field("N", description="During fine-tuning freeze: N nothing, A the down-projection, B the up-projection.")
    procrustes: bool = Field(False, description="After each step project A back to orthonormal rows (polar factor U V^T).")

    @field_validator("a_norm", mode="before")
    @classmethod
    def _a_norm(cls, v: Any) -> Any:
        if isinstance(v, (NormOfArm, NormOfInit)) or (isinstance(v, str) and v == "as_init"):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{v} is not a positive number: give {A_NORM_FORMS}")
            return float(v)
        if isinstance(v, dict) and set(v) in ({"match"}, {"init"}):
            model = NormOfArm if "match" in v else NormOfInit
            try:
                return model.model_validate(v)
            except ValidationError as err:
                raise ValueError(f"{v}: {err.errors()[0]['msg']} — give {A_NORM_FORMS}") from None
        raise ValueError(f"{v!r} is not {A_NORM_FORMS}")

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, v: str) -> str:
        if not v or any(c not in "qkvo" for c in v) or len(set(v)) != len(v):
            raise ValueError("must be distinct letters from 'qkvo', e.g. 'qv'")
        return v

    @property
    def scale(self) -> float:
        return self.alpha / (self.rank**0.5 if self.rslora else self.rank)

    def adapter_args(self) -> dict[str, Any]:
        """The fields osrm_core.lora.attach_lora takes: rank, alpha, dropout, rslora, init."""
        return {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout, "rslora": self.rslora, "init": self.init}

    @property
    def a0_norm(self) -> float | str | None:
        """a_norm as osrm_core.lora.target_norm reads it: None for 'as_init', the number, or the init X of {init: X}
        (whose expected norm it asks). {match: <arm>} is resolved only in an arm's view (PipelineConfig.for_arm)."""
        if isinstance(self.a_norm, NormOfArm):
            raise OsrmError(f"lora.a_norm {self.a_norm} is unresolved: {{match: <arm>}} is resolved in an arm's view of "
                            "the config (PipelineConfig.for_arm) — build the model from that view")
        if isinstance(self.a_norm, NormOfInit):
            return self.a_norm.init
        return None if self.a_norm == "as_init" else self.a_norm


class OsrmConfig(Strict):
    estimator: Estimator = Field("sample-mean", description="Feature estimator: sample-mean (paper), task-mean (released code), token.")
    k: int = Field(100, ge=1, description="Samples per task fed to the frozen backbone (paper: 100).")
    include_padding: bool = Field(False, description="Average over padding positions too (the released code's behaviour).")
    batch_size: int = Field(32, ge=1, description="Batch size of the feature-extraction forward passes.")
    objective: Literal["contrast"] | None = Field(
        None, description="Subspace objective: null = the paper's (least other-task energy); 'contrast' = this project's "
        "extension, the top generalised eigenvectors of own- vs other-task energy, which maximise their ratio trace (docs/osrm.md). contrast needs estimator sample-mean or token.")
    contrast_ridge: float = Field(
        1e-2, gt=0, description="contrast only: ridge rho, eps = rho * tr(S_not_t) / d_in added to the other tasks' "
        "second moment so directions they barely use cannot win by division by ~0 (docs/osrm.md).")

    @model_validator(mode="after")
    def _contrast_needs_rows(self) -> "OsrmConfig":
        if self.objective == "contrast" and self.estimator == "task-mean":
            raise ValueError("osrm.objective=contrast with osrm.estimator=task-mean: one mean row per task gives a rank-1 "
                             "own-task moment (a single useful direction) — use estimator sample-mean or token")
        return self


class FinetuneConfig(Strict):
    epochs: float = Field(3, gt=0, description="Epochs (per-task values in hparams_file win).")
    lr: float = Field(4e-4, gt=0, description="Peak learning rate (per-task values in hparams_file win).")
    batch_size: int = Field(32, ge=1, description="Per-device batch size.")
    grad_accum: int = Field(1, ge=1, description="Gradient-accumulation steps.")
    warmup_ratio: float = Field(0.06, ge=0, le=1, description="Linear warm-up fraction of the total steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    hparams_file: str | None = Field(None, description="JSON of per-task {epochs, lr} like the paper's (configs/hparams/).")
    bf16: Literal["auto", "on", "off"] = Field("auto", description="bf16 autocast: auto = on for CUDA GPUs with bf16, off on CPU (slower there).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass.")
    select_on: Literal["validation", "last"] = Field("validation", description="Keep the epoch with the best validation score, or the last.")
    log_every: int = Field(20, ge=1, description="Steps between logged training metrics.")
    checkpoint_every: int = Field(200, ge=0, description="Steps between resumable checkpoints (0 = off).")
    deepspeed: str | None = Field(None, description="DeepSpeed JSON (configs/deepspeed/); null = plain torch.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; null = torch default.")


class MergeConfig(Strict):
    methods: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"weight_average": {}, "task_arithmetic": {"lambda": 0.3}, "ties": {"lambda": 1.0, "density": 0.2}},
        description="Merge method name -> its parameters (see osrm_core.merge.METHODS).",
    )
    fisher_samples: int = Field(64, ge=1, description="Train rows per task (seeded sample) for the diagonal Fisher of `fisher` merging.")
    fisher_batch_size: int = Field(16, ge=1, description="Batch size of the Fisher forward/backward passes.")
    fisher_labels: Literal["expected", "sample", "argmax"] = Field(
        "expected", description="Fisher over the model's own predictions: exact expectation over classes, one sampled label, or the argmax.")
    low_rank: int | None = Field(None, ge=1, description="Truncate every merged update (SVD) to one PEFT adapter of this rank; null = keep dense / sum(r).")
    sweep: dict[str, dict[str, list[float]]] = Field(
        default_factory=lambda data: _declared_grids(data.get("methods") or {}),
        description="`osrm select`: method -> parameter -> grid values, chosen on the validation split (the product is "
                    "scored, the method's `methods` parameters first so that ties prefer them; docs/study.md). "
                    "Default: the grid each method of `methods` declares (osrm_core.merge.METHODS).")
    widen: int = Field(2, ge=0, description="`osrm select`: rounds of widening the grid where the validation choice "
                       "sits on an edge that is not a natural bound: one more point one grid step beyond it (the other "
                       "parameters at their chosen values), then choose again; 0 = the grid as written (docs/merging.md, \"Edges\").")
    sweep_tasks: list[str] = Field(default_factory=lambda: ["task_arithmetic"],
                                   description="Methods whose `osrm select` also scores merges of the first 2..T tasks "
                                               "on validation with their `methods` parameters (score vs number of tasks).")


def _declared_grids(methods: dict) -> dict:
    from osrm_core.merge import default_grids  # the registry imports torch: only when a config is built

    return default_grids(methods)


class ArmConfig(Strict):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)
    init: Init = Field(..., description="How A starts: gaussian (plain LoRA), kaiming (PEFT's default LoRA init), osrm "
                       "(the subspace), orthonormal (control), its scale lora.a_norm; or from arm `from`'s adapters: "
                       "refit (projected into the subspace, then fine-tuned) or posthoc (docs/osrm.md, \"Convert\").")
    from_: str | None = Field(None, alias="from", description="init refit / posthoc: the arm whose adapters this arm starts from.")
    refit_epochs: float = Field(1.0, ge=0, description="init refit: epochs of the re-fit (replace finetune.epochs and the "
                                "hparams file's); 0 = the projected adapter as it is.")
    keep_share: float = Field(0.9, gt=0, le=1, description="init posthoc: the share of each task's own output shift the "
                              "post-hoc projection keeps (the fewest input directions that keep it).")
    lora: dict[str, Any] = Field(default_factory=dict, description="Overrides of the lora section for this arm, e.g. {freeze: A}.")
    osrm: dict[str, Any] = Field(default_factory=dict, description="Overrides of the osrm section, e.g. {objective: contrast}.")


class DerivedArmConfig(ArmConfig):
    """An arm made from arm `from`'s trained adapters (init refit / posthoc), written under `derived` (a list) so
    that dvc.yaml's derive stage can name its edge to `from`: a matrix over the `arms` mapping sees only names."""
    arm: str = Field(..., description="The arm's name: it joins `arms` under this key.")


class EvaluateConfig(Strict):
    split: Literal["validation", "test"] = Field("test", description="Split that is scored (model selection uses validation).")
    batch_size: int = Field(32, ge=1, description="Evaluation batch size (rows are sorted by token count, so smaller batches pad less).")


class StudyConfig(Strict):
    primary: list[str] = Field(
        default_factory=lambda: ["task_arithmetic", "ties"],
        description="The comparisons decided in advance: each method's validation-chosen merge, every arm vs the "
                    "reference, Holm-adjusted together; every other row of the report is exploratory (docs/statistics.md). "
                    "Methods not in merge.methods are ignored.")
    level: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of every interval; verdicts test at 1 − level.")


class PipelineConfig(Strict):
    workdir: str = Field("runs/default", description="Root folder of every artifact.")
    backbone: str = Field("minilm", description="Backbone: a config name in configs/backbones/, a YAML path, a local model folder (config.json) or a hub id org/name.")
    suite: SuiteField = Field("default", description="Task suite: a name in configs/suites/, a suite YAML path, or an inline "
                              "`{tasks: [...]}` of your own tasks (docs/own_tasks.md); paths relative to this file's folder.")
    tasks: list[str] = Field(default_factory=list, description="Tasks to run; empty = every task of the suite.")
    arms: dict[str, ArmConfig] = Field(
        default_factory=lambda: {"lora": ArmConfig(init="gaussian"), "osrm": ArmConfig(init="osrm")},
        description="The arms compared: name -> an init plus overrides of the lora / osrm sections (docs/study.md).")
    derived: list[DerivedArmConfig] = Field(default_factory=list, description="Arms made from another arm's trained "
                                            "adapters (init refit / posthoc, each with `from` and `arm`, its name): each joins "
                                            "`arms`; `dvc repro` runs them after arm `from` (dvc.yaml stage derive), which an "
                                            "arm with `from` written under `arms` gets only from `osrm run` (docs/osrm.md, \"Re-fit\").")
    reference: str = Field("lora", description="The arm every other arm is compared with (paired differences, verdicts).")
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1, description="Training seeds: each drives LoRA init, "
                             "data order, the k-sample of the features and DARE/Fisher sampling; every seed's artifacts live apart.")
    seed: int | None = Field(None, description="The seed one stage process runs (its --seed); null = the first of `seeds`.")
    data: DataConfig = Field(default_factory=DataConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    osrm: OsrmConfig = Field(default_factory=OsrmConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    merge: MergeConfig = Field(default_factory=MergeConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    study: StudyConfig = Field(default_factory=StudyConfig)
    _feature_k: int | None = PrivateAttr(None)  # set on an arm's view (for_arm): the base config's feature_k

    @field_validator("tasks")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({t for t in v if v.count(t) > 1})
        if dup:
            raise ValueError(f"duplicate task names {dup}: list each task once")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("duplicate seeds: list each seed once")
        return v

    @model_validator(mode="after")
    def _derived_join_arms(self) -> "PipelineConfig":
        """Each entry of `derived` becomes arms[entry.arm] (a dump holds it in both places: the same settings pass)."""
        for i, entry in enumerate(self.derived):
            if entry.from_ is None:
                raise ValueError(f"derived[{i}].from: an arm under derived starts from another arm's adapters — name that arm")
            arm = ArmConfig.model_validate(entry.model_dump(by_alias=True, exclude={"arm"}))
            if self.arms.get(entry.arm, arm) != arm:
                raise ValueError(f"derived[{i}].arm: {entry.arm!r} is also a key of arms, with other settings — define it once")
            self.arms[entry.arm] = arm
        return self

    @model_validator(mode="after")
    def _arms_and_seed(self) -> "PipelineConfig":
        if self.seed is None:
            self.seed = self.seeds[0]
        if self.seed not in self.seeds:
            raise ValueError(f"seed {self.seed} is not one of seeds {self.seeds} — add it to `seeds`")
        if self.reference not in self.arms:
            raise ValueError(f"reference arm {self.reference!r} is not one of arms {sorted(self.arms)} — name one of them")
        for name, arm in self.arms.items():
            if "init" in arm.lora:
                raise ValueError(f"arms.{name}.lora.init: set `init` on the arm itself (arms.{name}.init)")
            for section, model in (("lora", LoraConfig), ("osrm", OsrmConfig)):
                try:
                    model.model_validate({**getattr(self, section).model_dump(), **getattr(arm, section)})
                except ValidationError as err:
                    first = err.errors()[0]
                    field = ".".join(str(p) for p in first["loc"])
                    raise ValueError(f"arms.{name}.{section}.{field}: {str(first['msg']).removeprefix('Value error, ')}") from None
        return self

    @model_validator(mode="after")
    def _arm_k_honoured(self, info: ValidationInfo) -> "PipelineConfig":
        """Features are extracted once, at feature_k; an arm with a smaller osrm.k uses a prefix of their seeded
        sample (docs/regimes.md). The token estimator's Grams are summed over every sampled row, so it cannot. Every
        arm with subspaces (INITS[init].needs_subspace: osrm, refit) builds them from that sample."""
        from osrm_core.lora import INITS  # the registry imports torch: only when a config is built

        if info.context and "feature_k" in info.context:  # an arm's view (for_arm): the base config was checked
            self._feature_k = info.context["feature_k"]
            return self
        for name, arm in self.arms.items():
            merged = {**self.osrm.model_dump(), **arm.osrm}
            if INITS[arm.init].needs_subspace and merged["estimator"] == "token" and merged["k"] != self.feature_k:
                raise ValueError(f"arms.{name}.osrm.k={merged['k']} with estimator token: features are extracted at the "
                                 f"largest osrm.k of the config and its arms ({self.feature_k}) and the token Grams sum over "
                                 "all of those rows, so a smaller k cannot be honoured — give this arm "
                                 f"k={self.feature_k} or estimator sample-mean / task-mean")
        return self

    @property
    def feature_k(self) -> int:
        """The k that `osrm extract-features` samples: the largest osrm.k of the config and of any arm's override
        (an arm's view keeps its base config's value). Arms with a smaller k use the first k of that seeded draw."""
        if self._feature_k is not None:
            return self._feature_k
        return max([self.osrm.k] + [int(a.osrm["k"]) for a in self.arms.values() if "k" in a.osrm])

    def for_arm(self, arm: str) -> "PipelineConfig":
        """This config as arm `arm` runs it: its lora / osrm overrides applied, lora.init = the arm's init.
        feature_k stays the base config's (the features are shared by every arm)."""
        a = self.arms[arm]
        data = self.model_dump()
        norm = self.a_norm_of(arm)
        data["lora"] = {**data["lora"], **a.lora, "init": a.init, "a_norm": norm.model_dump() if isinstance(norm, BaseModel) else norm}
        data["osrm"] = {**data["osrm"], **a.osrm}
        return PipelineConfig.model_validate(data, context={"feature_k": self.feature_k})

    def _arm_a_norm(self, arm: str) -> tuple[ANorm, str]:
        """(arm's lora.a_norm as written, the field it comes from)."""
        if "a_norm" in self.arms[arm].lora:
            return LoraConfig(a_norm=self.arms[arm].lora["a_norm"]).a_norm, f"arms.{arm}.lora.a_norm"
        return self.lora.a_norm, "lora.a_norm"

    def a_norm_of(self, arm: str) -> "ANorm":
        """arms.<arm>'s lora.a_norm with {match: other} resolved along the chain of matches: 'as_init', a number, or
        {init: X} = the expected norm of X's A_0 (X the init of the arm the chain ends at: one whose a_norm is
        'as_init', or that matches itself). Deterministic per module shape, not the realised norm of another
        arm's seeded draw (docs/study.md). Call it on the base config, not on an arm's view."""
        name, seen = arm, []
        while True:
            value, field = self._arm_a_norm(name)
            if not isinstance(value, NormOfArm):
                return NormOfInit(init=self.arms[name].init) if value == "as_init" and name != arm else value
            if value.match not in self.arms:
                raise ValueError(f"{field}: match {value.match!r} is not one of arms {sorted(self.arms)} — name one of them")
            if value.match == name:
                return NormOfInit(init=self.arms[name].init)
            seen.append(name)
            if value.match in seen:
                raise ValueError(f"{field}: match {value.match!r} closes a cycle of matches ({' -> '.join(seen + [value.match])}) "
                                 "— let one of them keep its init's norm or give it a number")
            name = value.match

    @model_validator(mode="after")
    def _arm_sources(self) -> "PipelineConfig":
        """Each arm sets only the fields its init reads (osrm_core.lora.INITS); `from` names an arm, without cycles."""
        from osrm_core.lora import INITS  # the registry imports torch: only when a config is built

        for name, arm in self.arms.items():
            method = INITS[arm.init]
            given = {f.alias or n for n, f in ArmConfig.model_fields.items() if n not in ("init", "lora", "osrm")
                     and getattr(arm, n) != f.default}  # by value: an arm's view (for_arm) dumps every field
            if given - method.reads:
                raise ValueError(f"arms.{name}.{sorted(given - method.reads)[0]}: init {arm.init} does not read it — remove it")
            if method.start is not None and arm.from_ is None:
                raise ValueError(f"arms.{name}.from: init {arm.init} starts from another arm's adapters — name that arm")
            if method.start is not None and self.a_norm_of(name) != "as_init":
                raise ValueError(f"arms.{name}.lora.a_norm: init {arm.init} starts at the converted update (A is not "
                                 "rescaled) — set it to as_init for this arm")
            chain = [name]
            while self.arms[chain[-1]].from_ is not None:
                source = self.arms[chain[-1]].from_
                if source not in self.arms:
                    raise ValueError(f"arms.{chain[-1]}.from: {source!r} is not one of arms {sorted(self.arms)} — name one of them")
                if source in chain:
                    raise ValueError(f"arms.{name}.from: {' -> '.join(chain + [source])} is a cycle — start one of them "
                                     "from an arm that is fine-tuned")
                chain.append(source)
        return self

    def arm_order(self) -> list[str]:
        """The arms, each after the arm it starts from (`from`): the order their adapters can be made in."""
        out: list[str] = []
        for name in self.arms:
            chain = [name]
            while self.arms[chain[-1]].from_ is not None:
                chain.append(self.arms[chain[-1]].from_)
            out += [a for a in reversed(chain) if a not in out]
        return out

    @model_validator(mode="after")
    def _merge_params(self) -> "PipelineConfig":
        """merge.methods and merge.sweep are checked here and nowhere else (osrm_core.merge.check_merge_config)."""
        from osrm_core.merge import check_merge_config

        try:
            check_merge_config(self.merge.methods, self.merge.sweep)
        except OsrmError as err:
            raise ValueError(str(err)) from None
        return self

    @model_validator(mode="after")
    def _a_norm_matches(self) -> "PipelineConfig":
        for name in self.arms:
            self.a_norm_of(name)
        return self

    @model_validator(mode="after")
    def _rank_vs_k(self) -> "PipelineConfig":
        if self.osrm.estimator == "sample-mean" and self.osrm.k < 2:
            raise ValueError("osrm.k must be >= 2 for the sample-mean estimator — raise osrm.k")
        if self.osrm.k < self.lora.rank:
            raise ValueError(f"osrm.k={self.osrm.k} is smaller than lora.rank={self.lora.rank}: the subspace would be "
                             "fixed by the seed, not by the data — raise osrm.k to at least lora.rank")
        return self

    def digest(self, *sections: str) -> str:
        """sha256 of the named sections (all when none), for manifests and cache keys."""
        data = self.model_dump(mode="json")
        if sections:
            data = {s: data[s] for s in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _format_validation(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{source}: unknown key '{loc}' — check its spelling (see pipeline.yaml for the valid keys)"
    msg = str(first["msg"]).removeprefix("Value error, ")
    if loc == "<root>":
        return f"{source}: {msg}"
    return f"{source}: field '{loc}': {msg} — fix that value"


def parse_config(data: dict | None, source: str = "config") -> PipelineConfig:
    """Validate a dict into a PipelineConfig; any problem becomes a one-line OsrmError."""
    if data is not None and not isinstance(data, dict):
        raise OsrmError(f"{source}: expected a mapping of sections at the top level, got {type(data).__name__} — "
                        "write `key: value` lines like pipeline.yaml")
    try:
        return PipelineConfig.model_validate(data or {})
    except ValidationError as err:
        raise OsrmError(_format_validation(err, source)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read pipeline.yaml (or any YAML view of PipelineConfig), apply dotted overrides."""
    path = Path(path)
    if not path.is_file():
        raise OsrmError(f"config file {path} does not exist — pass --config with the path to pipeline.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise OsrmError(f"{path}{where}: malformed YAML ({getattr(err, 'problem', err)}) — fix the syntax") from None
    data = data or {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_config(data, str(path))
