"""The sections of pipeline.yaml (data, lora, osrm, finetune, merge, arms, evaluate, study) as pydantic models
(``extra="forbid"``); :class:`osrm_pipeline.pipeline_config.PipelineConfig` holds one of each and checks them
together. Field descriptions are the CLI's and docs' help texts."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from osrm_core.errors import OsrmError


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
