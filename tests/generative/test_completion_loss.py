"""The generative training loss (osrm_core.generative.loss): the model's own loss and gradients, from the logits of
the target-predicting columns only."""

from __future__ import annotations

import torch

from osrm_core.generative.batches import IGNORE, train_batches
from osrm_core.generative.loss import completion_loss
from osrm_core.train import model_loss
from tests.generative.tiny_lm import save_tiny_llama, tiny_tokenizer


def test_completion_loss_equals_the_models_loss_and_gradients(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    save_tiny_llama(tmp_path)
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tmp_path),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights="gaussian", task_type="CAUSAL_LM"))
    with torch.no_grad():  # B != 0, so LoRA gradients flow through every layer
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    prompts = [tok(t)["input_ids"] for t in ("review : the film is good sentiment :", "review : the book is very bad sentiment :",
                                             "colour of the red ball ?")]
    targets = [tok(t, add_special_tokens=False)["input_ids"] for t in (" positive", " negative", " red ball")]
    examples = [(p + t + [tok.eos_token_id], len(p)) for p, t in zip(prompts, targets)]
    inputs, labels = next(train_batches(examples, 3, [0, 1, 2], tok.pad_token_id))
    assert (labels[:, :4] == IGNORE).all()  # the prompts: the kept columns start after them
    grads = []
    for fn in (model_loss, completion_loss):
        model.zero_grad()
        loss = fn(model, inputs, labels)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-6, atol=1e-6)
    for ours, theirs in zip(grads[1][1], grads[0][1]):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
