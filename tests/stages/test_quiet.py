"""With OSRM_NO_PROGRESS set (tests, SLURM jobs) a stage prints its own lines only: no library progress bars
(transformers' "Loading weights") and no FutureWarning about `is_gradient_checkpointing` (PEFT reading
transformers' deprecated alias); other warnings still show."""

from __future__ import annotations

import warnings

from tests.conftest import TINY_TASKS


def test_finetune_prints_no_library_bars_or_peft_future_warning(cli, tiny_config, monkeypatch):
    monkeypatch.setenv("OSRM_NO_PROGRESS", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = cli("finetune", "-c", tiny_config, "--task", TINY_TASKS[0], "--arm", "lora")
        warnings.warn("a real warning", UserWarning)
    assert "Loading weights" not in res.output and "it/s]" not in res.output, res.output
    messages = [str(w.message) for w in caught]
    assert not any("is_gradient_checkpointing" in m for m in messages), messages
    assert "a real warning" in messages
