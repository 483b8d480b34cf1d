"""The generative kind on a tiny Llama: training batches (target tokens only, EOS, right padding), batched
label likelihood and left-padded greedy generation against one-row-at-a-time loops, and its input checks."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from osrm_core.errors import OsrmError
from osrm_core.generative import encode
from osrm_core.generative.batches import IGNORE
from osrm_core.tasks.kinds import kind_of
from osrm_pipeline.suites import load_task, resolve_suite
from tests.generative.tiny_lm import TASKS, save_tiny_llama, tiny_tokenizer, write_data, write_project


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("tiny-llama")
    save_tiny_llama(root / "model")
    write_data(root)
    suite = resolve_suite({"suite": "gen", "tasks": TASKS}, base_dir=root)
    return AutoModelForCausalLM.from_pretrained(root / "model").eval(), tiny_tokenizer(), suite


def test_training_batches_learn_the_target_and_eos_only(lm):
    _, tok, suite = lm
    spec, dd = load_task(suite, "sentiment")
    kind, ds = kind_of(spec), dd["train"]
    inputs, labels = next(iter(kind.train_batches(tok, ds, spec, 4, 24, [0, 1, 2, 3])))
    for row in range(4):
        prompt = tok(f"review : {ds[row]['review']} sentiment :")["input_ids"]
        target = tok(" " + spec.label_names[ds[row]["label"]], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = len(prompt) + len(target)
        assert inputs["input_ids"][row, :n].tolist() == prompt + target and inputs["attention_mask"][row].sum() == n
        assert labels[row, :len(prompt)].eq(IGNORE).all() and labels[row, len(prompt):n].tolist() == target
        assert labels[row, n:].eq(IGNORE).all() and inputs["input_ids"][row, n:].eq(tok.pad_token_id).all()  # right padding


def test_label_likelihood_is_the_per_choice_sum_of_log_probs(lm):
    model, tok, suite = lm
    spec, dd = load_task(suite, "topic")
    kind, order = kind_of(spec), list(range(6))
    got = kind.predict(model, kind.eval_batches(tok, dd, "test", spec, 4, 24, order))
    prompts = encode.prompt_ids(tok, dd["test"], spec)
    for i in order:
        for c, choice in enumerate(encode.completion_ids(tok, spec, list(spec.label_names))):
            ids = torch.tensor([prompts[i] + choice])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
            want = sum(logp[len(prompts[i]) - 1 + k, t] for k, t in enumerate(choice))
            assert got[i, c] == pytest.approx(float(want), abs=1e-4)


@pytest.mark.parametrize("wrapped", [False, True], ids=["model", "peft"])
def test_choices_of_different_lengths_continue_each_prompt_from_its_cache(lm, wrapped):
    """Choices of 1, 2 and 3 tokens after prompts of different lengths, several rows per batch: the cached
    continuation (prompt once, choices from its KV cache) equals one forward per (prompt + choice) sequence, on the
    model and through a PEFT LoRA wrapper (which passes the cache argument on to the model)."""
    import copy

    from peft import LoraConfig, get_peft_model

    from osrm_core.generative import batches as gb
    from osrm_core.generative import score

    model, tok, _ = lm
    if wrapped:
        cfg = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
        model = get_peft_model(copy.deepcopy(model), cfg).eval()  # random B: the adapter changes the scores
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16], [17]]
    choices = [[20], [21, 22], [23, 24, 25]]
    got = score.label_likelihood(model, gb.choice_batches(prompts, choices, 3, [2, 0, 1, 3], tok.pad_token_id))
    for k, i in enumerate([2, 0, 1, 3]):
        for c, choice in enumerate(choices):
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=torch.tensor([prompts[i] + choice])).logits[0, :-1], -1)
            want = sum(logp[len(prompts[i]) - 1 + j, t] for j, t in enumerate(choice))
            assert got[k, c] == pytest.approx(float(want), abs=1e-4)


def test_left_padded_greedy_generation_matches_one_row_at_a_time(lm):
    model, tok, suite = lm
    spec, dd = load_task(suite, "colour")
    kind, ds = kind_of(spec), dd["test"]
    order = kind.eval_order(tok, ds, spec, 24)
    batches = list(kind.eval_batches(tok, dd, "test", spec, 8, 24, order))
    assert batches[0].decoding.max_new_tokens == 2  # the longest training target (one word) + EOS
    got = kind.predict(model, batches)
    prompts = encode.prompt_ids(tok, ds, spec)
    for k, i in enumerate(order):
        with torch.no_grad():
            out = model.generate(torch.tensor([prompts[i]]), max_new_tokens=2, do_sample=False, pad_token_id=tok.pad_token_id)
        text = batches[0].decoding.decode(out[0, len(prompts[i]):].tolist())
        assert float(got[k, 0]) == batches[0].decoding.score(text, ds[i]["label"])


def _expect_error(cli, config, *needles):
    res = cli("extract-features", "-c", config, "--task", "sentiment", ok=False)
    assert res.exit_code == 2 and all(n in res.output for n in needles), res.output
    assert not (config.parent / "runs").exists()  # nothing written


def test_prompt_longer_than_max_length_is_one_line(cli, tmp_path):
    config = write_project(tmp_path, data={"max_length": 8})
    _expect_error(cli, config, "prompt and target are", "data.max_length=8")


def test_generative_task_on_an_encoder_is_one_line(cli, tmp_path, tiny_backbone):
    config = write_project(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**cfg, "backbone": str(tiny_backbone)}))
    _expect_error(cli, config, "needs a decoder (causal LM) backbone", "is encoder")


def test_chat_template_missing_is_one_line(cli, tmp_path):
    config = write_project(tmp_path)
    (tmp_path / "model" / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((tmp_path / "model" / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (tmp_path / "model" / "tokenizer_config.json").write_text(json.dumps(cfg))
    res = cli("extract-features", "-c", config, "--task", "topic", ok=False)
    assert res.exit_code == 2 and "has no chat template" in res.output, res.output


def test_a_tokenizer_without_pad_pads_with_eos_masked(tmp_path):
    from osrm_core.models import load_tokenizer
    from osrm_pipeline.backbone_registry import load_spec

    spec = save_tiny_llama(tmp_path / "model", pad=False)
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(spec))
    tok = load_tokenizer(load_spec(str(tmp_path / "b.yaml")))
    assert tok.pad_token_id == tok.eos_token_id
    write_data(tmp_path)
    task, dd = load_task(resolve_suite({"tasks": TASKS[:1]}, base_dir=tmp_path), "sentiment")
    inputs, labels = next(iter(kind_of(task).train_batches(tok, dd["train"], task, 8, 24, list(range(8)))))
    eos_kept = (labels == tok.eos_token_id).sum(1)
    assert eos_kept.eq(1).all()  # the target's own EOS is learnt, the EOS used as padding is masked
    assert (inputs["attention_mask"] == 0).any() and labels[inputs["attention_mask"] == 0].eq(IGNORE).all()
