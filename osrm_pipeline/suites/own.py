"""Your own tasks: the YAML schema of suites whose tasks come from local files or ``datasets``.

A suite of your own is a YAML file (anywhere; ``suite:`` in pipeline.yaml names its path) or a
mapping written inline under ``suite:`` in pipeline.yaml. Each task picks a ``loader``:

- ``files``: CSV, TSV, JSONL or Parquet; one file per split (``train``/``validation``/``test``), or one
  file (``path``) with a split column;
- ``datasets``: ``datasets.load_dataset(dataset, config)`` for a hub id or a local folder in the hub's
  formats, or ``load_from_disk`` for a ``save_to_disk`` folder.

Relative paths resolve against ``data.data_dir`` when it is set, else against the suite file's
folder, or the pipeline.yaml folder for an inline suite (docs/own_tasks.md). These models are the
only definition of the schema; this module imports no ``datasets``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationInfo, field_validator, model_validator

from osrm_core.errors import OsrmError
from osrm_core.tasks.prompt import GenerateFields
from osrm_core.tasks.spec import ROW_MEAN_METRICS, Metric

SplitName = Literal["train", "validation", "test"]
FileFormat = Literal["csv", "tsv", "jsonl", "parquet"]
#: file extension -> format (``.json`` must hold one JSON object per line, like ``.jsonl``)
EXTENSIONS: dict[str, FileFormat] = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class _OwnTaskBase(BaseModel):
    """What every own task declares: its name, the column mapping and the label space."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="Task key (lowercase letters, digits, _).")
    description: str = ""
    generate: GenerateFields | None = Field(None, description="A generative task: prompt template, target column, optional choices.")
    text: tuple[str, ...] = Field((), max_length=2, validate_default=True,
                                  description="Text column(s): one (single text) or two (pair), in model input order; none with `generate`.")
    label: str = Field("label", description="Label column (class names/ids, or numbers when num_labels is 1).")
    label_names: tuple[str, ...] = Field((), description="Class names in class-index order; empty = the distinct labels found, sorted.")
    num_labels: int | None = Field(None, ge=1, description="1 = regression (float labels); empty = len(label_names).")
    metric: Metric | None = Field(None, description="Scoring metric; empty = accuracy (pearson_spearman for regression).")
    shuffle: bool = Field(False, description="Seeded shuffle of each split before the row caps (for files sorted by label).")

    @field_validator("text")
    @classmethod
    def _text_or_generate(cls, text: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not text and info.data.get("generate") is None and "generate" in info.data:
            raise ValueError("give one or two text columns (or a `generate:` block: a generative task)")
        return text

    @model_validator(mode="after")
    def _consistent(self) -> "_OwnTaskBase":
        if self.generate is not None:
            return self._generative()
        if self.metric in ROW_MEAN_METRICS:
            raise ValueError(f"metric {self.metric} scores generated text; it needs a `generate:` block without choices")
        if len(set(self.text)) != len(self.text):
            raise ValueError(f"text lists column {self.text[0]!r} twice; give one or two different columns")
        if "label" in self.text or self.label in self.text:
            raise ValueError(f"a text column cannot be the label column or be named 'label' (text: {list(self.text)})")
        if len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"label_names has duplicates: {list(self.label_names)}")
        if self.num_labels == 1 and self.label_names:
            raise ValueError("a regression task (num_labels: 1) has no label_names; remove them")
        if self.label_names and self.num_labels is not None and len(self.label_names) != self.num_labels:
            raise ValueError(f"label_names has {len(self.label_names)} names but num_labels is {self.num_labels}")
        if len(self.label_names) == 1:
            raise ValueError("label_names needs >= 2 classes; for regression set num_labels: 1")
        if self.metric is not None and (self.metric == "pearson_spearman") != self.is_regression:
            raise ValueError("metric pearson_spearman goes with num_labels: 1 (regression), and regression only with it")
        return self

    def _generative(self) -> "_OwnTaskBase":
        """A generative task names its columns in `generate`, never in the classification fields."""
        defaults = {"text": (), "label": "label", "label_names": (), "num_labels": None}  # by value: dumps round-trip
        given = [f for f, default in defaults.items() if getattr(self, f) != default]
        if given:
            raise ValueError(f"{given} belong to classification tasks; a generative task names its columns in "
                             "`generate.prompt` and `generate.target` (and its label words in `generate.choices`)")
        if "label" in self.generate.columns:
            raise ValueError("the prompt names a column 'label', the name the loaded target takes; rename that column")
        free = not self.generate.choices
        if self.metric is not None and (self.metric in ROW_MEAN_METRICS) != free:
            allowed = list(ROW_MEAN_METRICS) if free else ["accuracy", "accuracy_f1", "matthews"]
            raise ValueError(f"metric {self.metric} does not fit a generative task {'without' if free else 'with'} choices; use one of {allowed}")
        return self

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1 and self.generate is None

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The columns the model reads: `text`, or those the prompt template names."""
        return self.generate.columns if self.generate is not None else self.text

    def column_fields(self) -> list[tuple[str, str]]:
        """(the task field naming it, column) of every column read, for messages."""
        inputs = "generate.prompt" if self.generate is not None else "text"
        target = "generate.target" if self.generate is not None else "label"
        return [*((inputs, c) for c in self.input_columns), (target, self.target_column)]

    @property
    def target_column(self) -> str:
        """The column the model learns: `label`, or `generate.target`."""
        return self.generate.target if self.generate is not None else self.label

    @property
    def resolved_metric(self) -> Metric:
        if self.generate is not None:
            return self.metric or ("accuracy" if self.generate.choices else "exact_match")
        return self.metric or ("pearson_spearman" if self.is_regression else "accuracy")


class FilesTask(_OwnTaskBase):
    """A task read from local files: ``train``+``validation``+``test``, or ``path`` with a split column."""

    loader: Literal["files"]
    train: str | None = Field(None, description="File of the train split.")
    validation: str | None = Field(None, description="File of the validation split.")
    test: str | None = Field(None, description="File of the test split.")
    path: str | None = Field(None, description="One file holding every split, told apart by split_column.")
    split_column: str = Field("split", description="With `path`: the column naming each row's split.")
    split_values: dict[SplitName, str] = Field(default_factory=dict, description="With `path`: our split -> its value in split_column (default: the split's name).")
    format: FileFormat | None = Field(None, description="File format; empty = from the extension (.csv .tsv .jsonl .json .parquet).")

    @model_validator(mode="after")
    def _one_layout(self) -> "FilesTask":
        per_split = {s: getattr(self, s) for s in ("train", "validation", "test")}
        if self.path is not None:
            given = [s for s, f in per_split.items() if f is not None]
            if given:
                raise ValueError(f"give either `path` (one file with a split column) or train/validation/test files, not both ({given} set)")
        else:
            missing = [s for s, f in per_split.items() if f is None]
            if len(missing) == 3:
                raise ValueError("no data: give `path` (one file with a split column) or train, validation and test files")
            if missing:
                raise ValueError(f"no file for split(s) {missing}: give train, validation and test (or one `path` with a split column)")
            if self.split_values:
                raise ValueError("split_values only applies with `path`")
        if self.split_column in (*self.input_columns, self.target_column):
            raise ValueError(f"split_column {self.split_column!r} is also a text or label column")
        return self

    def split_files(self) -> dict[str, str]:
        """Our split -> the file holding it (the same file for all three with ``path``)."""
        return {s: self.path or getattr(self, s) for s in ("train", "validation", "test")}

    def file_format(self, file: Path) -> FileFormat:
        """Format of ``file``: ``format`` if set, else its extension (OsrmError for others)."""
        if self.format:
            return self.format
        fmt = EXTENSIONS.get(file.suffix.lower())
        if fmt is None:
            raise OsrmError(
                f"task '{self.name}': {file}: unsupported file extension '{file.suffix}'; "
                f"use one of {sorted(EXTENSIONS)} or set `format:` (csv, tsv, jsonl, parquet)"
            )
        return fmt


class DatasetsTask(_OwnTaskBase):
    """A task read with ``datasets``: a hub id, a local folder in the hub's formats, or a save_to_disk folder."""

    loader: Literal["datasets"]
    dataset: str = Field(description="Hub id (org/name), a local dataset folder, or a save_to_disk folder.")
    config: str | None = Field(None, description="Dataset configuration name (load_dataset's second argument).")
    splits: dict[SplitName, str] = Field(default_factory=dict, description="Our split -> the dataset's split name (default: the same name).")

    def source_split(self, split: str) -> str:
        return self.splits.get(split, split)  # type: ignore[call-overload]


OwnTask = Annotated[FilesTask | DatasetsTask, Field(discriminator="loader")]


class OwnSuite(BaseModel):
    """A suite of your own tasks (a YAML file, or inline under ``suite:`` in pipeline.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str = Field("own", pattern=r"^[A-Za-z0-9_.-]+$", description="Suite name (a file's defaults to its stem).")
    description: str = ""
    tasks: tuple[OwnTask, ...] = Field(min_length=1, description="The tasks, each with a `loader`: files or datasets.")
    _base_dir: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _unique_names(self) -> "OwnSuite":
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate task names {dupes}; give each task its own name")
        return self

    @property
    def loader(self) -> str:
        return "own"

    @property
    def has_base(self) -> bool:
        return self._base_dir is not None

    def at(self, base_dir: str | Path | None) -> "OwnSuite":
        """This suite with relative paths resolving against ``base_dir`` (None: the working directory)."""
        copy = self.model_copy()
        copy._base_dir = Path(base_dir) if base_dir is not None else None
        return copy

    def base(self, data_dir: str | None) -> Path:
        """Folder that relative paths resolve against: data_dir, else the suite's folder, else the cwd."""
        if data_dir is not None:
            return Path(data_dir)
        return self._base_dir if self._base_dir is not None else Path.cwd()

    def task(self, name: str) -> FilesTask | DatasetsTask:
        """The task called ``name`` (OsrmError listing the valid names otherwise)."""
        for entry in self.tasks:
            if entry.name == name:
                return entry
        valid = ", ".join(t.name for t in self.tasks)
        raise OsrmError(f"unknown task '{name}' in suite '{self.suite}'; valid tasks: {valid}")


#: pipeline.yaml's ``suite``: a suite name or YAML path, or an inline own suite; tagged so that a
#: mistake inside an inline suite is reported at its own field (``suite.inline.tasks.0...``)
SuiteField = Annotated[
    Union[Annotated[str, Tag("name")], Annotated[OwnSuite, Tag("inline")]],
    Discriminator(lambda v: "name" if isinstance(v, str) else "inline"),
]
