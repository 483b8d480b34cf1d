"""Suite configuration files: ``configs/suites/<suite>.yaml``, validated with pydantic.

The configs folder is :func:`osrm_pipeline.config_dirs.configs_dir` (the shipped configs, or ``$OSRM_CONFIGS_DIR``,
read on every call so that tests and stages can point elsewhere).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from osrm_core.errors import OsrmError
from osrm_core.tasks.prompt import GenerateFields
from osrm_core.tasks.spec import ROW_MEAN_METRICS, Metric, TaskSpec
from osrm_pipeline.config_dirs import config_files, configs_dir
from osrm_pipeline.suites.own import OwnSuite

DEFAULT_SIZES = {"train": 2000, "validation": 300, "test": 300}


def _check_sizes(sizes: dict[str, int] | None) -> dict[str, int] | None:
    """Split sizes name only train/validation/test and are positive."""
    if sizes:
        unknown = sorted(set(sizes) - set(DEFAULT_SIZES))
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; use train, validation, test")
        if any(int(v) < 1 for v in sizes.values()):
            raise ValueError("split sizes must be positive")
    return sizes


class TaskEntry(BaseModel):
    """One task of a suite, as written in the YAML: a classification task (text_fields, num_labels), or a
    generative one (``generate``: its prompt over the builder's text fields; the builder's ``label`` is the target,
    a class name mapped to ``generate.choices`` by position in ``label_names``, or free text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    text_fields: tuple[str, ...] = Field((), max_length=2)
    num_labels: int | None = Field(None, ge=1)
    metric: Metric
    label_names: tuple[str, ...] = ()
    generate: GenerateFields | None = None  # packaged suites: the task written as prompt -> target (docs/data_card.md)
    description: str = ""
    builder: str | None = None  # packaged suites: key into default_suite.BUILDERS
    sizes: dict[str, int] | None = None  # packaged suites: rows per split (caps)
    options: dict = Field(default_factory=dict)  # packaged suites: builder options
    hub_config: str | None = None  # glue: dataset config name (default: the task name)
    hub_splits: dict[str, str] = Field(default_factory=dict)  # glue: our split -> hub split

    @field_validator("sizes")
    @classmethod
    def check_sizes(cls, sizes: dict[str, int] | None) -> dict[str, int] | None:
        return _check_sizes(sizes)

    @model_validator(mode="after")
    def _labels_match(self) -> "TaskEntry":
        if self.generate is not None:
            return self._generative()
        if not self.text_fields or self.num_labels is None:
            raise ValueError("a classification task needs text_fields and num_labels (or a `generate:` block)")
        if self.metric in ROW_MEAN_METRICS:
            raise ValueError(f"metric {self.metric} scores generated text; it needs a `generate:` block without choices")
        if self.num_labels > 1 and len(self.label_names) != self.num_labels:
            raise ValueError(f"label_names has {len(self.label_names)} names but num_labels is {self.num_labels}")
        if self.num_labels == 1 and self.metric != "pearson_spearman":
            raise ValueError("a regression task (num_labels: 1) must use metric pearson_spearman")
        return self

    def _generative(self) -> "TaskEntry":
        """The prompt names the text fields; the builder's `label` is the target; label_names pair with choices."""
        gen = self.generate
        if self.text_fields or self.num_labels is not None:
            raise ValueError("a generative task takes its text fields from generate.prompt; remove text_fields and num_labels")
        if gen.target != "label":
            raise ValueError(f"generate.target is {gen.target!r}, but a packaged builder writes the target as 'label'; set target: label")
        if (self.metric in ROW_MEAN_METRICS) == bool(gen.choices) or self.metric == "pearson_spearman":
            raise ValueError(f"metric {self.metric} does not fit a generative task {'with' if gen.choices else 'without'} choices")
        if len(self.label_names) != len(gen.choices):
            raise ValueError(f"label_names (the builder's classes) has {len(self.label_names)} names but generate.choices "
                             f"has {len(gen.choices)}; give one class per choice, in the same order")
        return self

    def spec(self) -> TaskSpec:
        """The immutable TaskSpec the rest of the pipeline uses (a generative task's label names are its choices)."""
        if self.generate is not None:
            return TaskSpec(name=self.name, text_fields=self.generate.columns, num_labels=len(self.generate.choices),
                            metric=self.metric, label_names=self.generate.choices, description=self.description,
                            generation=self.generate.generation())
        return TaskSpec(
            name=self.name,
            text_fields=tuple(self.text_fields),
            num_labels=self.num_labels,
            metric=self.metric,
            label_names=tuple(self.label_names),
            description=self.description,
        )

    def choice_of(self) -> dict[str, str]:
        """A generative task's builder class name -> its choice word ({} for classification and free text)."""
        return dict(zip(self.label_names, self.generate.choices)) if self.generate is not None else {}


class SuiteConfig(BaseModel):
    """A whole suite file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    loader: Literal["packaged", "glue"]
    description: str = ""
    sizes: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_SIZES))
    hub_dataset: str | None = None
    caps: dict[str, int] = Field(default_factory=dict)
    tasks: tuple[TaskEntry, ...] = Field(min_length=1)

    @field_validator("sizes")
    @classmethod
    def check_sizes(cls, sizes: dict[str, int] | None) -> dict[str, int] | None:
        return _check_sizes(sizes)

    @model_validator(mode="after")
    def _unique_names(self) -> "SuiteConfig":
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate task names {dupes}")
        return self

    def task(self, name: str) -> TaskEntry:
        """The entry called ``name`` (OsrmError listing the valid names otherwise)."""
        for entry in self.tasks:
            if entry.name == name:
                return entry
        valid = ", ".join(t.name for t in self.tasks)
        raise OsrmError(f"unknown task '{name}' in suite '{self.suite}'; valid tasks: {valid}")

    def sizes_for(self, entry: TaskEntry) -> dict[str, int]:
        """Per-split sizes of a packaged task: the suite's defaults overridden by the task's."""
        return {**DEFAULT_SIZES, **self.sizes, **(entry.sizes or {})}


def suite_files(project: str | Path | None = None) -> dict[str, Path]:
    """Suite name -> YAML file: every ``configs/suites/*.yaml``, ``<project>/configs/suites/`` winning over the shipped."""
    return config_files("suites", project)


def read_suite(suite: str, project: str | Path | None = None) -> SuiteConfig | OwnSuite:
    """The validated config of ``suite`` (OsrmError naming the valid suites if unknown)."""
    files = suite_files(project)
    if suite not in files:
        valid = ", ".join(files) or "none"
        raise OsrmError(f"unknown task suite '{suite}' (looked in {configs_dir() / 'suites'}); valid suites: {valid}")
    return read_suite_file(files[suite])


def read_suite_file(path: str | Path) -> SuiteConfig | OwnSuite:
    """A suite YAML file anywhere (an own suite's relative paths resolve against the file's folder)."""
    path = Path(path)
    if not path.is_file():
        raise OsrmError(f"suite file {path} not found; give a suite name from {configs_dir() / 'suites'} or the path of a suite YAML")
    return _parse_suite(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _parse_suite(path: str, mtime_ns: int) -> SuiteConfig | OwnSuite:
    """Parse and validate one suite file (cached per file version)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise OsrmError(f"{path}: not valid YAML ({exc})") from None
    stem = Path(path).stem
    if isinstance(raw, dict) and "loader" not in raw:  # own tasks: the loader is per task
        raw = {"suite": stem, **raw}
    config = validate_suite(raw, path)
    if config.suite != stem:
        raise OsrmError(f"{path}: field 'suite' is '{config.suite}' but the file is named {stem}.yaml")
    return config.at(Path(path).parent) if isinstance(config, OwnSuite) else config


def validate_suite(raw: object, where: str) -> SuiteConfig | OwnSuite:
    """A packaged/GLUE suite (top-level ``loader``) or an own suite (a ``loader`` per task)."""
    if not isinstance(raw, dict):
        raise OsrmError(f"{where}: a suite is a mapping with `tasks:` (see docs/own_tasks.md), got {type(raw).__name__}")
    model = SuiteConfig if "loader" in raw else OwnSuite
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise OsrmError(f"{where}: {_describe(exc, raw)}") from None


def _describe(exc: ValidationError, raw: dict) -> str:
    """First validation error as ``task 'name': field 'x': message`` (or ``field 'x': message``)."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    prefix = ""
    if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
        try:
            task = raw["tasks"][loc[1]]
            prefix = f"task '{task['name']}': "
        except (KeyError, IndexError, TypeError):
            task, prefix = None, f"task #{loc[1] + 1}: "
        loc = loc[2:]
        if loc and isinstance(task, dict) and loc[0] == task.get("loader"):  # the discriminator's tag
            loc = loc[1:]
    where = ".".join(str(p) for p in loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{prefix}field '{where}': {message}" if where else f"{prefix}{message}"
