#!/usr/bin/env bash
# Is every task of configs/generative.yaml learnt at its budget? (docs/data_card.md, "The generative suite")
# The lora arm at seed 42 only, decided on the validation split: each individual adapter's validation score
# (finetune's training.json: the saved epoch's) vs the prompted base model's (zero-shot, `osrm evaluate --model base` on validation).
# Writes runs/gen_learnt/; prints a table. Resumable: steps with a manifest are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
W=runs/gen_learnt
mkdir -p $W
# configs/generative.yaml with every task of its suite, the lora arm, seed 42, evaluate on validation
sed -e "s#^workdir: runs/generative#workdir: $W#" -e 's#^seeds: \[.*\]#seeds: [42]#' -e 's#^  split: test#  split: validation#' \
    -e 's#^tasks: .*#tasks: [question_type, movie_sentiment, sms_spam, headline_match, news_headline]#' -e '/^#   (LoRA on validation/d' \
    -e '/^  [a-z_]*: {init: /{/^  lora: /!d}' configs/generative.yaml > $W/config.new.yaml
cmp -s $W/config.new.yaml $W/config.yaml || mv $W/config.new.yaml $W/config.yaml
export OSRM_NO_PROGRESS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
.venv/bin/osrm run -c $W/config.yaml --skip-done --only finetune
[ -f $W/eval/seed42/base/manifest.json ] || .venv/bin/osrm evaluate -c $W/config.yaml --model base
echo "wall time $(( $(date +%s) - start )) s"
.venv/bin/python - "$W" <<'PY'
import json, sys
from pathlib import Path
from osrm_pipeline.pipeline_config import load_config
from osrm_core.study import LEARNT_MARGIN, Rows, chance_score
from osrm_pipeline.suites import load_task
from osrm_core.tasks.kinds import kind_of
w = Path(sys.argv[1])
cfg = load_config(w / "config.yaml")
base = json.loads((w / "eval/seed42/base/metrics.json").read_text())["tasks"]
print("| task | chance | zero-shot | LoRA individual | gain | learnt |\n|---|---|---|---|---|---|")
for task, floor in base.items():
    spec, data = load_task(cfg.suite, task, max_eval=cfg.data.max_eval)
    chance = chance_score(Rows(spec.metric, kind_of(spec).labels(spec, data["validation"])))
    history = json.loads((w / "adapters/seed42/lora" / task / "training.json").read_text())["history"]
    ind = max(h["score"] for h in history)  # the saved epoch's (finetune.select_on: validation)
    learnt = ind >= floor["score"] + LEARNT_MARGIN and ind > chance
    print(f"| {task} | {chance:.1f} | {floor['score']:.1f} | {ind:.1f} | {ind - floor['score']:+.1f} | {'yes' if learnt else 'no'} |")
PY
