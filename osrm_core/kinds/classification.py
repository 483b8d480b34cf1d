"""The classification kind: a sequence classifier whose head trains and saves with the adapter (classes, or a
regression score with num_labels 1). Every method is the code path the pipeline had before task kinds."""

from __future__ import annotations

import numpy as np
import torch

from osrm_core.batching import in_input_order, iterate, length_sorted, token_lengths
from osrm_core.errors import OsrmError


class Classification:
    peft_task_type = None  # the classifier's head is wrapped through modules_to_save, not a PEFT task type
    serving_padding_side = "right"  # BERT-style pooling reads position 0: pipelines pad on the right
    has_head = True  # a trained task head: even the pretrained body is scored with one (the reference arm's)

    def check_labels(self, spec, labels: list, split: str, where: str) -> None:
        """Finite labels; class ids in range and >= 2 classes in train (one-line OsrmError)."""
        arr = np.asarray(labels, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise OsrmError(f"{where}: split '{split}' has NaN/Inf labels — fix the task's data files")
        if spec.is_regression:
            return
        bad = arr[(arr < 0) | (arr >= spec.num_labels) | (arr != np.round(arr))]
        if bad.size:
            raise OsrmError(f"{where}: split '{split}' has label {bad[0]:g} outside 0..{spec.num_labels - 1} — "
                            f"fix the data or the task's label count in the suite YAML")
        if split == "train" and np.unique(arr).size < 2:
            raise OsrmError(f"{where}: split 'train' has a single class ({arr[0]:g}) — a classifier needs >= 2 classes; "
                            "check the data files or raise data.max_train")

    def check_inputs(self, spec, data, backbone, tokenizer, max_length: int, where: str) -> None:
        """Nothing beyond the labels: texts longer than data.max_length are truncated (the paper's setting)."""

    def load_model(self, backbone, spec):
        from osrm_core.models import load_classifier

        return load_classifier(backbone, spec.num_labels)

    def skeleton(self, backbone, spec):
        from transformers import AutoModelForSequenceClassification

        from osrm_core.models import skeleton

        return skeleton(backbone, AutoModelForSequenceClassification, num_labels=spec.num_labels)

    def standalone(self, backbone, spec, tokenizer, data, update: dict, head: dict):
        """The classifier with W0 + Δ folded in, the task head and named labels (osrm_core.export.fold)."""
        from osrm_core.export import fold

        return fold(self.load_model(backbone, spec), update, head, spec)

    def serve(self, model, tokenizer, spec, data, rows: dict[str, list[str]], batch_size: int, max_length: int,
              where: str, track) -> list[dict]:
        """A prediction record per row of `rows` (columns: the text fields), in input order: label, label_id and
        class probabilities, or the regression value; texts truncated at max_length as in training."""
        from osrm_core.export import class_records, label_names

        n = len(rows[spec.text_fields[0]])
        cols = {**rows, "label": [0] * n}
        order = length_sorted(tokenizer, cols, spec.text_fields, max_length)  # longest first: less padding
        batches = iterate(tokenizer, cols, spec.text_fields, batch_size, max_length, order)
        logits = self.predict(model, track(batches, -(-n // batch_size)))
        return class_records(in_input_order(logits, order), label_names(spec), spec.is_regression)

    def model_key(self, spec) -> int:
        return spec.num_labels  # one classifier per label count serves every task with that count

    def heads(self, model) -> list[str]:
        from osrm_core.models import head_module_names

        return head_module_names(model)

    def train_lengths(self, tokenizer, ds, spec, max_length: int) -> list[int]:
        return token_lengths(tokenizer, ds, spec.text_fields, max_length)

    def train_batches(self, tokenizer, ds, spec, batch_size: int, max_length: int, order):
        return iterate(tokenizer, ds, spec.text_fields, batch_size, max_length, order)

    def loss(self, model, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
        """The classifier's own loss (cross-entropy over the classes, MSE for a regression)."""
        from osrm_core.train import model_loss

        return model_loss(model, inputs, labels)

    def feature_batches(self, tokenizer, ds, spec, batch_size: int, max_length: int, pad_to_max: bool):
        return iterate(tokenizer, ds, spec.text_fields, batch_size, max_length, pad_to_max=pad_to_max)

    def eval_order(self, tokenizer, ds, spec, max_length: int) -> list[int]:
        return length_sorted(tokenizer, ds, spec.text_fields, max_length)

    def eval_batches(self, tokenizer, data, split: str, spec, batch_size: int, max_length: int, order):
        return iterate(tokenizer, data[split], spec.text_fields, batch_size, max_length, order)

    def predict(self, model, batches, device: str = "cpu", bf16: bool = False) -> torch.Tensor:
        """Logits (n x num_labels) float32 in batch order."""
        from osrm_core.train import predict

        return predict(model, iter(batches), device, bf16)

    def labels(self, spec, ds) -> np.ndarray:
        return torch.as_tensor(list(ds["label"])).numpy()

    def predictions(self, spec, scores: np.ndarray) -> np.ndarray:
        from osrm_core.metrics import predictions

        return predictions(scores, spec.is_regression)

    def fisher_batches(self, tokenizer, ds, spec, batch_size: int, max_length: int, order):
        return (x for x, _ in iterate(tokenizer, ds, spec.text_fields, batch_size, max_length, order))

    def fisher_objective(self, spec):
        return None  # osrm_core.merge.fisher's own: the classifier's predictive distribution
