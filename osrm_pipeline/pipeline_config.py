"""One source of truth for every parameter: pydantic models (``extra="forbid"``).

``pipeline.yaml`` is a dump of :class:`PipelineConfig` (its sections: osrm_pipeline.config_sections); each Typer
stage reads it and lets a few flags override fields (the flags are views of these fields, their help text is the field's).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from osrm_core.errors import OsrmError
from osrm_pipeline.config_sections import (ANorm, ArmConfig, DataConfig, DerivedArmConfig, EvaluateConfig, FinetuneConfig,
                                           LoraConfig, MergeConfig, NormOfArm, NormOfInit, OsrmConfig, Strict, StudyConfig)
from osrm_pipeline.suites.own import SuiteField

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
