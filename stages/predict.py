"""`osrm predict`: label new text with a scored model (base, individual adapters or a merge) — JSONL or CSV in,
labels and scores, or generated text, out (docs/serving.md)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import typer

from osrm_core.errors import OsrmError
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline.run import open_run
from osrm_pipeline.task_scores import task_model
from stages.io.guard import guarded, progress
from stages.io.options import CONFIG, SEED, TASK, WORKDIR, run_overrides
from stages.io.served import body_update, one_model, open_model, task_head

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
MODEL = typer.Option(..., "--model", help="Which model labels the rows: 'base', '<arm>/individual' or '<arm>/<method>'.")
INPUT = typer.Option(..., "--input", "-i", help="Rows to label: .jsonl (one object per line) or .csv (header row); "
                     "the task's text fields (a generative task: its prompt template's columns) are the keys/columns.")
OUTPUT = typer.Option(..., "--output", "-o", help="Where to write: .jsonl or .csv; one row per input row, in input order.")
BATCH = typer.Option(None, "--batch-size", min=1, help="Rows (a generative task with choices: row x choice sequences) per forward pass; default evaluate.batch_size.")


def _format(path: Path, what: str) -> str:
    if path.suffix.lower() not in FORMATS:
        raise OsrmError(f"--{what} {path}: unknown format '{path.suffix}' — use .jsonl or .csv")
    return FORMATS[path.suffix.lower()]


def read_rows(path: Path, fields: tuple[str, ...]) -> list[dict]:
    """The rows of a JSONL or CSV file as read (every column kept), each checked to have the task's text `fields`;
    a one-line OsrmError for an unreadable file, a bad line or a missing field (naming the file, the row and the field)."""
    kind = _format(path, "input")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's BOM is not part of a name
            rows = list(csv.DictReader(f)) if kind == "csv" else [_json_line(line, path, i) for i, line in enumerate(f, 1) if line.strip()]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise OsrmError(f"--input {path}: cannot read it ({getattr(err, 'strerror', None) or type(err).__name__}) — check the path") from None
    if not rows:
        raise OsrmError(f"--input {path}: no rows — it needs {'a header and ' if kind == 'csv' else ''}at least one row with {list(fields)}")
    for i, row in enumerate(rows, 1):
        for f in fields:
            if row.get(f) is None:
                raise OsrmError(f"--input {path}: row {i} has no '{f}' — add it; the task reads {list(fields)} (keys/columns)")
    return rows


def _json_line(line: str, path: Path, i: int) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict):
        raise OsrmError(f"--input {path}: line {i} is not a JSON object — write one {{\"field\": \"text\"}} per line")
    return row


def joined(rows: list[dict], predictions: list[dict]) -> tuple[list[dict], list[str]]:
    """Output records that join back to the input: `row` (1-based, the n-th input row), the input's own columns,
    then the prediction. An input column named like an output column (`row`, `label`, `p_<name>`, ...) is kept as
    `input_<name>`. Returns (records, the renamed input columns)."""
    out, renamed = [], {}
    for i, (row, pred) in enumerate(zip(rows, predictions), 1):
        taken = {"row", *pred, *(f"p_{n}" for n in pred.get("probabilities", {}))}
        renamed |= {k: None for k in row if k in taken}
        out.append({"row": i, **{f"input_{k}" if k in taken else k: v for k, v in row.items()}, **pred})
    return out, list(renamed)


def write_rows(path: Path, records: list[dict]) -> None:
    """JSONL (records as they are) or CSV (probabilities as p_<label> columns), written to a temporary file
    renamed into place: no partial output."""
    kind = _format(path, "output")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            if kind == "jsonl":
                f.writelines(json.dumps(r) + "\n" for r in records)
            else:
                flat = [{k: v for k, v in r.items() if k != "probabilities"} | {f"p_{n}": p for n, p in r.get("probabilities", {}).items()}
                        for r in records]
                writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in flat for k in r)), restval="")
                writer.writeheader()
                writer.writerows(flat)
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OsrmError(f"--output {path}: cannot write it ({err.strerror}) — check the folder exists and is writable") from None


@guarded
def main(config: Path = CONFIG, model: str = MODEL, task: str = TASK, input: Path = INPUT, output: Path = OUTPUT,
         batch_size: int = BATCH, seed: int = SEED, workdir: Path = WORKDIR) -> None:
    """Predict every row of INPUT with MODEL on TASK and write OUTPUT in input order: the row number and the
    input's columns, then the prediction — classification: label, label_id and per-class probabilities, or the
    regression value; generative: the likeliest of the task's choices with their probabilities, or the greedy
    continuation of the prompt (`generated`)."""
    _format(output, "output")
    run = open_run(config, run_overrides(workdir, seed))
    spec, data = run.load_task(run.check_task(task))
    inputs = read_rows(input, spec.text_fields)
    ref = one_model(run, model, allow_base=True)
    adapters, merged = open_model(run, ref, tasks=[task])
    net = task_model(run, spec, body_update(ref, task, adapters, merged), task_head(adapters, task))
    track = lambda batches, total: progress(batches, f"predict {ref} on {task}", total=total)  # noqa: E731
    rows = {f: [str(r[f]) for r in inputs] for f in spec.text_fields}
    predictions = kind_of(spec).serve(net, run.tokenizer, spec, data, rows, batch_size or run.cfg.evaluate.batch_size,
                                      run.cfg.data.max_length, f"--input {input}", track)
    records, renamed = joined(inputs, predictions)
    if renamed:
        typer.echo(f"note: input columns {renamed} are written as {['input_' + k for k in renamed]} (the prediction uses those names)", err=True)
    write_rows(output, records)
    print(f"predict {ref} on {task}: {len(inputs)} rows -> {output}")
