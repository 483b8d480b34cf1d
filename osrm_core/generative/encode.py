"""A generative task's rows as token ids: the prompt (template, optional chat template) and the target.

The prompt is tokenised with the tokenizer's special tokens (a BOS where it adds one), or none when a chat
template wrote them; the target is ``separator + target`` without special tokens, and training appends EOS
so the adapter learns where to stop (docs/own_tasks.md, "Generative tasks").
"""

from __future__ import annotations

from osrm_core.errors import OsrmError
from osrm_core.tasks.prompt import render
from osrm_core.tasks.spec import TaskSpec


def rows(ds, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """Each row's prompt columns {column: text}."""
    columns = [list(ds[f]) for f in fields]
    return [dict(zip(fields, values)) for values in zip(*columns)]


def prompt_texts(tokenizer, ds, spec: TaskSpec) -> list[str]:
    """Every row's rendered prompt; as a user turn of the tokenizer's chat template when the task asks."""
    gen = spec.generation
    texts = [render(gen.prompt, row) for row in rows(ds, spec.text_fields)]
    if not gen.chat_template:
        return texts
    return [tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
            for t in texts]


def prompt_ids(tokenizer, ds, spec: TaskSpec) -> list[list[int]]:
    """Token ids of every row's prompt (a chat template writes its own special tokens)."""
    return tokenizer(prompt_texts(tokenizer, ds, spec), add_special_tokens=not spec.generation.chat_template)["input_ids"]


def target_texts(spec: TaskSpec, ds) -> list[str]:
    """Every row's target: its choice (label = index into the choices) or its free text."""
    labels = list(ds["label"])
    return [spec.label_names[i] for i in labels] if spec.label_names else [str(t) for t in labels]


def completion_ids(tokenizer, spec: TaskSpec, texts: list[str]) -> list[list[int]]:
    """Token ids of ``separator + text`` (no special tokens) for each text."""
    return tokenizer([spec.generation.separator + t for t in texts], add_special_tokens=False)["input_ids"]


def eos_id(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise OsrmError("the backbone's tokenizer has no EOS token — a generative task appends EOS to every target; "
                        "use a tokenizer with an eos_token")
    return int(tokenizer.eos_token_id)


def examples(tokenizer, ds, spec: TaskSpec) -> list[tuple[list[int], int]]:
    """(prompt + target + EOS ids, prompt length) per row: what training learns and features capture."""
    eos = eos_id(tokenizer)
    prompts = prompt_ids(tokenizer, ds, spec)
    targets = completion_ids(tokenizer, spec, target_texts(spec, ds))
    return [(p + t + [eos], len(p)) for p, t in zip(prompts, targets)]
