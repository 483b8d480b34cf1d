"""The generative kind: a causal LM without head learns prompt -> target (the adapter is a plain PEFT
CAUSAL_LM LoRA); rows are scored by label likelihood over the choices, or by greedy generation against the
reference (exact match, token F1). docs/own_tasks.md, "Generative tasks"; docs/evaluation.md."""

from __future__ import annotations

import numpy as np
import torch

from osrm_core.errors import OsrmError
from osrm_core.generative import batches as gb
from osrm_core.generative import encode, score, serve
from osrm_core.generative.loss import completion_loss
from osrm_core.generative.text_scores import ROW_SCORES
from osrm_core.kinds.classification import Classification

#: backbone families a generative task runs on (a decoder-only causal LM)
FAMILIES = ("decoder",)


def _decoder(tokenizer, eos: int):
    """ids -> text of a continuation, cut at its first EOS (generate pads finished rows)."""
    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids[: ids.index(eos)] if eos in ids else ids, skip_special_tokens=True)

    return decode


class Generative:
    peft_task_type = "CAUSAL_LM"
    serving_padding_side = "left"  # generation continues every prompt of a batch from the same column
    has_head = False  # the LM head is the backbone's: the pretrained body is the prompted model, zero-shot

    def check_labels(self, spec, labels: list, split: str, where: str) -> None:
        """Choices: the classification checks on the choice ids; free text was checked non-empty on loading."""
        if spec.label_names:
            Classification().check_labels(spec, labels, split, where)

    def check_inputs(self, spec, data, backbone, tokenizer, max_length: int, where: str) -> None:
        """A decoder backbone; a tokenizer with EOS (and a chat template when asked); every prompt with its
        longest completion + EOS within data.max_length (nothing is truncated silently)."""
        if backbone.family not in FAMILIES:
            raise OsrmError(f"{where}: a generative task needs a decoder (causal LM) backbone, but '{backbone.name}' is "
                            f"{backbone.family} — pick a decoder backbone (e.g. smollm2) or make it a classification task")
        tok = tokenizer()
        encode.eos_id(tok)
        if spec.generation.chat_template and not getattr(tok, "chat_template", None):
            raise OsrmError(f"{where}: generate.chat_template is set but the tokenizer of '{backbone.name}' has no chat "
                            "template — set chat_template: false or use an instruct backbone")
        choices = encode.completion_ids(tok, spec, list(spec.label_names)) if spec.label_names else []
        choice = max((len(c) for c in choices), default=0)
        for split in ("train", "validation", "test"):
            for i, (seq, n_prompt) in enumerate(encode.examples(tok, data[split], spec)):
                n = max(len(seq), n_prompt + choice + 1)
                if n > max_length:
                    raise OsrmError(f"{where}: split '{split}' row {i + 1}: prompt and target are {n} tokens, more than "
                                    f"data.max_length={max_length} — raise data.max_length or shorten the prompt")

    def load_model(self, backbone, spec):
        from osrm_core.models import load_causal_lm

        return load_causal_lm(backbone)

    def skeleton(self, backbone, spec):
        from transformers import AutoModelForCausalLM

        from osrm_core.models import skeleton

        return skeleton(backbone, AutoModelForCausalLM)

    def standalone(self, backbone, spec, tokenizer, data, update: dict, head: dict):
        """The causal LM with W0 + Δ folded in, its generation_config greedy for the task's decoding length
        (what `osrm predict` and evaluation decode with), so pipeline("text-generation") continues alike."""
        from osrm_core.apply import add_deltas

        model = self.load_model(backbone, spec)
        add_deltas(model, update)
        serve.greedy(model.generation_config, self._decoding(tokenizer, spec, data))
        return model

    def serve(self, model, tokenizer, spec, data, rows: dict[str, list[str]], batch_size: int, max_length: int,
              where: str, track) -> list[dict]:
        """A record per row of `rows` (columns: the template's), in input order: with choices, the choice of
        highest likelihood (label, label_id, probabilities = softmax of the choice log-likelihoods); free text,
        the greedy continuation (`generated`). A prompt whose decoding would pass max_length: one-line OsrmError."""
        prompts = encode.prompt_ids(tokenizer, rows, spec)
        decoding = self._decoding(tokenizer, spec, data)
        serve.check_lengths(prompts, decoding.max_new_tokens, max_length, where)
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # longest first: little padding
        if spec.label_names:
            batches, per = self._choice_batches(tokenizer, spec, prompts, batch_size, order)
            scores = score.label_likelihood(model, track(batches, -(-len(order) // per)))
            return serve.choice_records(scores, order, list(spec.label_names))
        batches = gb.prompt_batches(prompts, [""] * len(prompts), batch_size, order, decoding)  # no references
        return serve.generated_records(model, track(batches, -(-len(order) // batch_size)), order)

    def model_key(self, spec) -> str:
        return "causal_lm"  # one causal LM serves every generative task

    def heads(self, model) -> list[str]:
        return []  # the LM head is the backbone's own and stays frozen

    def train_lengths(self, tokenizer, ds, spec, max_length: int) -> list[int]:
        return [len(seq) for seq, _ in encode.examples(tokenizer, ds, spec)]

    def loss(self, model, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the target tokens, the LM head on the target-predicting columns only."""
        return completion_loss(model, inputs, labels)

    def train_batches(self, tokenizer, ds, spec, batch_size: int, max_length: int, order):
        return gb.train_batches(encode.examples(tokenizer, ds, spec), batch_size, order, tokenizer.pad_token_id)

    def feature_batches(self, tokenizer, ds, spec, batch_size: int, max_length: int, pad_to_max: bool):
        return gb.feature_batches(encode.examples(tokenizer, ds, spec), batch_size, tokenizer.pad_token_id,
                                  max_length if pad_to_max else None)

    def eval_order(self, tokenizer, ds, spec, max_length: int) -> list[int]:
        lengths = [len(p) for p in encode.prompt_ids(tokenizer, ds, spec)]
        return sorted(range(len(lengths)), key=lambda i: -lengths[i])  # longest first: little padding

    def eval_batches(self, tokenizer, data, split: str, spec, batch_size: int, max_length: int, order):
        prompts = encode.prompt_ids(tokenizer, data[split], spec)
        if spec.label_names:
            return self._choice_batches(tokenizer, spec, prompts, batch_size, order)[0]
        return gb.prompt_batches(prompts, encode.target_texts(spec, data[split]), batch_size, order,
                                 self._decoding(tokenizer, spec, data))

    def _choice_batches(self, tokenizer, spec, prompts: list[list[int]], batch_size: int, order):
        """(ChoiceBatches of `order`'s rows, rows per batch): batch_size prompts per forward, each scored against
        every choice from its KV cache."""
        choices = encode.completion_ids(tokenizer, spec, list(spec.label_names))
        return gb.choice_batches(prompts, choices, batch_size, order, tokenizer.pad_token_id), batch_size

    def _decoding(self, tokenizer, spec, data) -> gb.Decoding:
        """Greedy decoding for at most the longest choice, or the longest training target, + EOS tokens."""
        eos = encode.eos_id(tokenizer)
        texts = list(spec.label_names) or encode.target_texts(spec, data["train"])
        longest = max(len(t) for t in encode.completion_ids(tokenizer, spec, texts))
        return gb.Decoding(longest + 1, tokenizer.pad_token_id, eos, _decoder(tokenizer, eos), ROW_SCORES.get(spec.metric))

    def predict(self, model, batches, device: str = "cpu", bf16: bool = False) -> torch.Tensor:
        """Choice log-likelihoods (n x choices) or per-row generation scores (n x 1), rows in batch order."""
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return torch.empty(0)
        scorer = score.label_likelihood if isinstance(first, gb.ChoiceBatch) else score.generate
        return scorer(model, [first, *batches], device, bf16)

    def labels(self, spec, ds) -> np.ndarray:
        """Choice ids (n,); free text: ones, the best per-row score (the metric is the mean of the row scores)."""
        return Classification().labels(spec, ds) if spec.label_names else np.ones(len(ds), dtype=np.float32)

    def predictions(self, spec, scores: np.ndarray) -> np.ndarray:
        return scores.argmax(-1) if spec.label_names else scores[:, 0]

    def fisher_batches(self, tokenizer, ds, spec, batch_size: int, max_length: int, order):
        """Choice batches (with choices) or training batches (free text) of the sampled rows."""
        if spec.label_names:
            choices = encode.completion_ids(tokenizer, spec, list(spec.label_names))
            return gb.choice_batches(encode.prompt_ids(tokenizer, ds, spec), choices, batch_size, order, tokenizer.pad_token_id)
        return self.train_batches(tokenizer, ds, spec, batch_size, max_length, order)

    def fisher_objective(self, spec):
        from osrm_core.generative.fisher import choice_objective, token_objective

        return choice_objective if spec.label_names else token_objective
