"""Prompt templates of generative tasks: ``str.format`` templates over a row's columns (docs/own_tasks.md)."""

from __future__ import annotations

import string

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from osrm_core.tasks.spec import Generation


def template_columns(template: str) -> tuple[str, ...]:
    """The columns a template names, in order of first appearance (ValueError for what is not a plain column).

    ``{column}`` is a column; ``{{`` and ``}}`` are literal braces. Positional ``{}``, indexing, attributes,
    conversions and format specs are refused: a template must read as the row it renders."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"prompt {template!r} is not a valid template ({err}); write columns as {{name}} and braces as {{{{ }}}}") from None
    names = []
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if not field or field.isdigit() or any(c in field for c in ".[]") or spec or conversion:
            raise ValueError(f"prompt {template!r}: '{{{field}}}' is not a column name; write columns as {{name}} "
                             "(no positions, indexes, attributes or formats)")
        names.append(field)
    if not names:
        raise ValueError(f"prompt {template!r} names no column; write the row's columns as {{name}}")
    return tuple(dict.fromkeys(names))


def render(template: str, row: dict[str, str]) -> str:
    """The template with each ``{column}`` replaced by the row's value."""
    return template.format_map(row)


class GenerateFields(BaseModel):
    """The ``generate:`` block of a task: what makes it generative (docs/own_tasks.md, "Generative tasks")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1, description="str.format template over the row's columns, e.g. 'Review: {review}\\nSentiment:'.")
    target: str = Field(min_length=1, description="Column of the completion the adapter learns.")
    choices: tuple[str, ...] = Field((), description="Label words: the target is one of them; rows are ranked by label likelihood.")
    chat_template: bool = Field(False, description="Wrap the prompt as a user turn with the tokenizer's chat template.")
    separator: str = Field(" ", description="Text between the prompt and the target (lm-eval's target_delimiter).")

    @field_validator("prompt")
    @classmethod
    def _template(cls, prompt: str) -> str:
        template_columns(prompt)
        return prompt

    @model_validator(mode="after")
    def _consistent(self) -> "GenerateFields":
        if self.target in template_columns(self.prompt):
            raise ValueError(f"the prompt names the target column '{self.target}': the model would see the answer")
        if len(self.choices) == 1:
            raise ValueError("choices needs >= 2 label words (or none, for free text)")
        if len(set(self.choices)) != len(self.choices) or any(not c.strip() for c in self.choices):
            raise ValueError(f"choices must be distinct and non-empty: {list(self.choices)}")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        return template_columns(self.prompt)

    def generation(self) -> Generation:
        return Generation(prompt=self.prompt, target=self.target, choices=tuple(self.choices),
                          chat_template=self.chat_template, separator=self.separator)
