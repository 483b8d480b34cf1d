#!/usr/bin/env bash
# The generative study's "is every task learnt?" on the whole validation split (300 rows per task) instead of the test
# split: the study's own LoRA adapters (runs/generative, seeds of configs/generative.yaml) and the prompted base model,
# scored by `osrm evaluate` with evaluate.split = validation and data.max_eval = 300 (README, "The generative study").
# Usage: bash scripts/generative_learnt_validation.sh [STUDY_WORKDIR]   (default runs/generative; writes runs/gen_val300)
set -euo pipefail
cd "$(dirname "$0")/.."
STUDY=${1:-runs/generative}
W=runs/gen_val300
SEEDS=$(sed -n 's/^seeds: \[\(.*\)\].*/\1/p' configs/generative.yaml | tr -d ,)
mkdir -p $W
sed -e "s#^workdir: runs/generative#workdir: $W#" -e 's#^  split: test#  split: validation#' -e 's#^  max_eval: [0-9]*#  max_eval: 300#' \
    -e '/^  [a-z_]*: {init: /{/^  lora: /!d}' configs/generative.yaml > $W/config.yaml
export OSRM_NO_PROGRESS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
for s in $SEEDS; do
  [ -d $W/adapters/seed$s/lora ] || { mkdir -p $W/adapters/seed$s && cp -r "$STUDY/adapters/seed$s/lora" $W/adapters/seed$s/; }
  [ -f $W/eval/seed$s/individual/lora/manifest.json ] || .venv/bin/osrm evaluate -c $W/config.yaml --model lora/individual --seed $s
done
first=${SEEDS%% *}
[ -f $W/eval/seed$first/base/manifest.json ] || .venv/bin/osrm evaluate -c $W/config.yaml --model base --seed $first
.venv/bin/python - "$W" $SEEDS <<'PY'
import json, sys
from pathlib import Path
w, seeds = Path(sys.argv[1]), sys.argv[2:]
base = json.loads((w / f"eval/seed{seeds[0]}/base/metrics.json").read_text())["tasks"]
ind = {s: json.loads((w / f"eval/seed{s}/individual/lora/metrics.json").read_text())["tasks"] for s in seeds}
print("| task | zero-shot | " + " | ".join(f"LoRA seed {s}" for s in seeds) + " | mean gain |")
print("|---" * (len(seeds) + 3) + "|")
for t, b in base.items():
    scores = [ind[s][t]["score"] for s in seeds]
    gain = sum(scores) / len(scores) - b["score"]
    print(f"| {t} | {b['score']:.1f} | " + " | ".join(f"{x:.1f}" for x in scores) + f" | {gain:+.1f} |")
PY
