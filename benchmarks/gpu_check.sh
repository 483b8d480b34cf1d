#!/usr/bin/env bash
# One-GPU check, run on the GPU machine from the repository root (about 2-4 min on one H200; <= 8 min):
# DeepSpeed ZeRO-2 bf16 LoRA fine-tuning at Llama-3.2-1B and SmolLM2-135M shapes, TIES at Llama-3-8B
# shapes. Results: $OUT (or ./gpu_out)/gpu_bench.json and .log. See docs/scaling.md, "GPU check".
#   bash benchmarks/gpu_check.sh [extra gpu_bench.py arguments]
# Packages the machine lacks (deepspeed, pydantic, hjson) travel as wheels in .whl/: make them with
# benchmarks/gpu_wheels.sh on a machine with pip access, and carry .whl.
set -uo pipefail
out=${OUT:-gpu_out}
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false DS_BUILD_OPS=0 DS_ACCELERATOR=cuda
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import deepspeed, pydantic, peft, transformers" \
  || { echo "missing packages: run benchmarks/gpu_wheels.sh where pip works and carry .whl" >&2; exit 2; }
timeout 460 python3 benchmarks/gpu_bench.py --json "$out/gpu_bench.json" "$@" 2>&1 | tee "$out/gpu_bench.log"
exit "${PIPESTATUS[0]}"
