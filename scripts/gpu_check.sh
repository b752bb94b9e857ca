#!/usr/bin/env bash
# The whole GPU check in one go, for anyone with a CUDA GPU for half an hour:
#   ./scripts/gpu_check.sh [OUT_DIR]        (default: benchmarks/runs)
# 1. sets up .venv (pinned torch/torchvision/basicsr, the package with its test extras);
# 2. runs the CUDA-marked tests (flex vs reference, fp16/bf16, training through the fused kernel,
#    no recompilation across image sizes, no graph breaks);
# 3. benchmarks ESC, ESC-light, ESC-FP, ELAN-light and SwinIR-light at a 1280x720 output in fp32,
#    bf16 and fp16 (the paper's table) and one training step of each at the recipe's batch and patch;
# 4. writes every JSON and a markdown summary (summary_<gpu>.md) into OUT_DIR.
# Paste the summary's tables into benchmarks/README.md and commit the JSON files.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-benchmarks/runs}
mkdir -p "$OUT_DIR"
bash scripts/setup_env.sh
PY=.venv/bin/python
"$PY" - <<'PY' || { echo "error: no CUDA device visible to PyTorch" >&2; exit 2; }
import torch, sys
sys.exit(0 if torch.cuda.is_available() else 1)
PY
GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '_').replace('/', '_'))")
SUMMARY="$OUT_DIR/summary_${GPU}.md"
MODELS="esc esc_light esc_fp elan_light swinir_light"
{
  echo "# GPU check on ${GPU//_/ }"
  echo
  echo "torch $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)'), $(date -u +%F)"
  echo
  echo "## CUDA tests"
  echo '```'
} > "$SUMMARY"
set +e
"$PY" -m pytest -q -m cuda -p no:cacheprovider 2>&1 | tail -n 25 | tee -a "$SUMMARY"
TESTS_RC=${PIPESTATUS[0]}
set -e
echo '```' >> "$SUMMARY"
for PREC in fp32 bf16 fp16; do
  echo >> "$SUMMARY"; echo "## Inference x2, 1280x720 output, $PREC" >> "$SUMMARY"; echo >> "$SUMMARY"
  "$PY" -m esc_basicsr.benchmark --device cuda --precision "$PREC" --scale 2 --models $MODELS \
      --baseline swinir_light --json "$OUT_DIR/cuda_${GPU}_x2_1280x720_${PREC}.json" | tee -a "$SUMMARY"
done
for PREC in fp32 bf16; do
  echo >> "$SUMMARY"; echo "## Training step x2 (batch 64, LR patch 64), $PREC" >> "$SUMMARY"; echo >> "$SUMMARY"
  "$PY" -m esc_basicsr.benchmark --train --device cuda --precision "$PREC" --scale 2 --batch-size 64 \
      --patch 64 --models esc esc_light esc_fp swinir_light --baseline swinir_light \
      --json "$OUT_DIR/cuda_${GPU}_train_x2_b64_p64_${PREC}.json" | tee -a "$SUMMARY"
done
echo "GPU check written to $SUMMARY (CUDA tests exit code $TESTS_RC)"
exit "$TESTS_RC"
