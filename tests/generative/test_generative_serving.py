"""Serving generative adapters on a tiny Llama: `osrm predict` generates (free text) or ranks the choices, and the
export's task folder continues the same prompts through transformers' pipeline("text-generation") with the same
greedy text; the exported rank-capped adapter is a CAUSAL_LM adapter that plain PEFT loads and generates with.
Bad input stops in one line with nothing written."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tests.generative.tiny_lm import write_project

MODEL = "lora/task_arithmetic"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(cli, config, export folder): lora adapters fine-tuned on the 3 tasks, merged by task arithmetic, exported."""
    from tests.conftest import Cli

    root = tmp_path_factory.mktemp("serve")
    config = write_project(root, arms={"lora": {"init": "gaussian"}}, merge={"methods": {"task_arithmetic": {"lambda": 1.0}}},
                           finetune={"epochs": 1, "lr": 0.002})  # little training: the tiny LM still writes words, not EOS
    cli = Cli()
    cli("finetune", "-c", config, "--task", "all", "--arm", "lora")
    cli("merge", "-c", config, "--arm", "lora", "--method", "task_arithmetic")
    cli("export", "-c", config, "--model", MODEL, "--out", root / "exported", "--max-rank", "16")
    return cli, config, root / "exported"


def _rows(config, columns: list[str]) -> list[dict]:
    """The test rows' prompt columns, with an `id` of the user's (kept in the output)."""
    from osrm_pipeline.run import open_run

    _, data = open_run(config).load_task("colour" if "thing" in columns else "sentiment")
    return [{"id": f"r{i}", **{c: data["test"][i][c] for c in columns}} for i in range(len(data["test"]))]


def _predict(cli, config, task: str, rows: list[dict], out) -> list[dict]:
    src = out.with_suffix(".in.jsonl")
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli("predict", "-c", config, "--model", MODEL, "--task", task, "--input", src, "--output", out, "--batch-size", "4")
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_predict_generates_what_the_export_generates_through_the_pipeline(served, tmp_path):
    from transformers import pipeline

    cli, config, exported = served
    rows = _rows(config, ["thing"])
    got = _predict(cli, config, "colour", rows, tmp_path / "colour.jsonl")
    assert [(r["row"], r["id"], r["thing"]) for r in got] == [(i, r["id"], r["thing"]) for i, r in enumerate(rows, 1)]
    generator = pipeline("text-generation", model=str(exported / "colour"), device="cpu")
    assert generator.tokenizer.padding_side == "left" and generator.model.generation_config.max_new_tokens == 2
    prompts = [f"colour of {r['thing']} ?" for r in rows]
    outs = generator(prompts, return_full_text=False, batch_size=4)  # greedy: the folder's generation_config
    assert [o[0]["generated_text"].strip() for o in outs] == [r["generated"] for r in got]
    assert sum(bool(r["generated"]) for r in got) >= len(got) // 2  # the merge writes text, not only EOS


def test_predict_ranks_the_choices_by_the_exported_models_likelihood(served, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cli, config, exported = served
    rows = _rows(config, ["review"])
    got = _predict(cli, config, "sentiment", rows, tmp_path / "sentiment.jsonl")
    model = AutoModelForCausalLM.from_pretrained(exported / "sentiment").eval()
    tok = AutoTokenizer.from_pretrained(exported / "sentiment")
    for row, out in zip(rows, got):
        prompt = tok(f"review : {row['review']} sentiment :")["input_ids"]
        logliks = []
        for choice in ("negative", "positive"):  # one (prompt, choice) at a time: Σ log p(choice tokens | prompt)
            ids = prompt + tok(" " + choice, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], -1)
            logliks.append(sum(float(logp[k - 1, ids[k]]) for k in range(len(prompt), len(ids))))
        want = torch.softmax(torch.tensor(logliks, dtype=torch.float64), 0)
        assert out["label"] == ("negative", "positive")[int(want.argmax())] and out["label_id"] == int(want.argmax())
        assert [out["probabilities"][c] for c in ("negative", "positive")] == pytest.approx(want.tolist(), abs=1e-5)


def _peft_generates_like(adapter, folded, backbone) -> None:
    """PeftModel.from_pretrained(backbone, adapter) is a PeftModelForCausalLM whose logits and greedy tokens are
    those of the folded model (a folder written by export)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(backbone), adapter).eval()
    assert type(peft).__name__ == "PeftModelForCausalLM"
    folded = AutoModelForCausalLM.from_pretrained(folded).eval()
    tok = AutoTokenizer.from_pretrained(backbone)
    ids = tok(["colour of the red film ?"], return_tensors="pt")
    greedy = {"max_new_tokens": 3, "do_sample": False, "pad_token_id": tok.pad_token_id}
    with torch.no_grad():
        assert torch.allclose(peft(**ids).logits, folded(**ids).logits, atol=1e-5)
        assert torch.equal(peft.generate(**ids, **greedy), folded.generate(**ids, **greedy))


def test_exported_and_merged_adapters_generate_through_plain_peft(served):
    _, config, exported = served
    adapter = exported / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["task_type"] == "CAUSAL_LM" and not cfg["rank_pattern"] and cfg["r"] <= 16
    assert not (adapter / "heads").exists()  # head-less adapters: nothing to put into the base model first
    backbone = config.parent / "model"
    _peft_generates_like(adapter, exported / "colour", backbone)  # rank 3 x 4 = 12 <= 16: exact
    _peft_generates_like(config.parent / "runs/merged/seed42" / MODEL, exported / "colour", backbone)  # the workdir's merge
    assert json.loads((exported / "export.json").read_text())["adapters"]["shared"]["max_error"] < 1e-5


def test_per_task_export_of_individual_adapters(served, tmp_path):
    cli, config, _ = served
    cli("export", "-c", config, "--model", "lora/individual", "--out", tmp_path / "individual")
    for task in ("sentiment", "colour"):
        folder = tmp_path / "individual" / "adapter" / task
        assert json.loads((folder / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"
        _peft_generates_like(folder, tmp_path / "individual" / task, config.parent / "model")


def _fails(cli, *args) -> str:
    res = cli(*args, ok=False)
    assert res.exit_code == 2, res.output
    return res.output


def test_predict_input_without_a_template_column_is_one_line(served, tmp_path):
    cli, config, _ = served
    (tmp_path / "rows.jsonl").write_text('{"thing": "the red film"}\n{"object": "the blue book"}\n')
    out = _fails(cli, "predict", "-c", config, "--model", MODEL, "--task", "colour", "--input", tmp_path / "rows.jsonl",
                 "--output", tmp_path / "out.jsonl")
    assert "rows.jsonl: row 2 has no 'thing'" in out and "add it" in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists()


def test_predict_prompt_longer_than_max_length_is_one_line(served, tmp_path):
    cli, config, _ = served
    (tmp_path / "rows.jsonl").write_text(json.dumps({"thing": "the red film " * 10}) + "\n")
    out = _fails(cli, "predict", "-c", config, "--model", MODEL, "--task", "colour", "--input", tmp_path / "rows.jsonl",
                 "--output", tmp_path / "out.jsonl")
    assert "rows.jsonl: row 1: the prompt is" in out and "data.max_length=24" in out
    assert not (tmp_path / "out.jsonl").exists()


def test_export_of_a_generative_arm_on_an_encoder_is_one_line(served, tmp_path, tiny_backbone):
    cli, config, _ = served
    cfg = yaml.safe_load(config.read_text())
    other = config.parent / "encoder.yaml"  # beside the data
    other.write_text(yaml.safe_dump({**cfg, "backbone": str(tiny_backbone)}))
    out = _fails(cli, "export", "-c", other, "--model", MODEL, "--out", tmp_path / "exported")
    assert "needs a decoder (causal LM) backbone" in out and "is encoder" in out
    assert not (tmp_path / "exported").exists()
