#!/usr/bin/env bash
# The study (docs/study.md): configs/study.yaml (3 seeds x 4 arms x 7 tasks, task arithmetic and TIES with
# merge parameters chosen on validation), all stages in one process (`osrm run`), then the pooled report.
# A rerun skips every artifact that already has a manifest (delete runs/study to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
osrm run --config configs/study.yaml --skip-done "$@"
echo "study finished in $(( $(date +%s) - start )) s; report: runs/study/report/report.md"
