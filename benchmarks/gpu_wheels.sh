#!/usr/bin/env bash
# Run HERE (a machine with pip access), not on the GPU machine: collect the packages that the GPU
# machine's Python 3.12 lacks for benchmarks/gpu_bench.py into DEST (default .whl), as wheels.
#   bash benchmarks/gpu_wheels.sh [DEST]
# DEST must not be tracked: add "/.whl/" to .git/info/exclude, then name .whl in the device run's carry.
# Versions are the ones pinned by this project's venv (pyproject.toml). deepspeed ships only a source
# archive on PyPI: it is built here into a pure-Python wheel (DS_BUILD_OPS=0: its C++/CUDA ops are
# JIT-compiled on first use, and the ZeRO-2 path with torch AdamW needs none of them).
set -euo pipefail
dest=${1:-.whl}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$dest"
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" -d "$dest" \
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 hjson==3.1.0
src=$(mktemp -d)
"$py" -m pip download -q --no-deps --no-binary=:all: -d "$src" deepspeed==0.19.8
DS_BUILD_OPS=0 "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$dest" "$src"/deepspeed-*.tar.gz
rm -rf "$src"
ls -l "$dest"
