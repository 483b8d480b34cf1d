#!/usr/bin/env bash
# The README's run command: install (idempotent), then `dvc repro` the default pipeline
# (the default pipeline.yaml's tasks x arms fine-tunes, the merges, the evaluations, the report), then
# where its time went and the share of process start-up in it (benchmarks/pipeline_timing.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
iso=$(date -u -Iseconds)
dvc repro "$@"
workdir=$(python -c "import yaml; print(yaml.safe_load(open('pipeline.yaml'))['workdir'])")
echo
python benchmarks/pipeline_timing.py "$workdir" --start "$iso"
echo "pipeline finished in $(( $(date +%s) - start )) s; report: $workdir/report/report.md (plot: $workdir/report/merge.png)"
