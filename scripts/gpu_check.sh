#!/usr/bin/env bash
# The GPU check in one run, for a machine with a CUDA GPU (e.g. a lent H100/H200 without a package index):
#   ./scripts/gpu_check.sh [--dry-run] [--no-bench] [OUT_DIR]
# OUT_DIR: default $OUT (the lent machine's folder that comes back), else benchmarks/runs.
# 1. installs what is missing: from .whl/ when it holds wheels (../shared/device/prepare.sh makes them;
#    no index needed: `pip install --no-index --no-deps .whl/*.whl .`), else scripts/setup_env.sh (.venv);
# 2. writes env.txt (torch, CUDA, GPU, TF32 defaults);
# 3. runs the CUDA-marked tests (pytest -m cuda: fixture parity without TF32, the TF32 bound, reduced
#    precision, every architecture vs its CPU output, training steps, ELAN's fixture in fp32/fp16, flex
#    compiled once per variant for every architecture/precision/mode, small heads falling back to sdpa)
#    into cuda_tests.log and cuda_tests.xml, time-boxed by TEST_TIMEOUT (default 900 s);
# 4. unless --no-bench: benchmarks ESC, ESC-light, ESC-FP, ELAN-light and SwinIR-light at a 1280x720
#    output in fp32/bf16/fp16 and a training step in fp32/bf16 (JSON + summary_<gpu>.md), each
#    time-boxed by BENCH_TIMEOUT (default 300 s).
# --dry-run (no GPU needed): checks the installation, writes env.txt, collects the CUDA tests into
# cuda_tests.log and prints the benchmark commands instead of running them.
# Exit code: the CUDA tests' (2: no CUDA device and not --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0 BENCH=1 OUT_DIR=
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --no-bench) BENCH=0 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "unknown option $arg" >&2; exit 64 ;;
    *) OUT_DIR=$arg ;;
  esac
done
OUT_DIR=${OUT_DIR:-${OUT:-benchmarks/runs}}
mkdir -p "$OUT_DIR"
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}

# 1. installation and 2. environment (scripts/gpu_env.sh)
source scripts/gpu_env.sh
gpu_env "$OUT_DIR" "torch basicsr esc_basicsr pytest"
HAS_CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
if [ "$HAS_CUDA" != 1 ] && [ "$DRY" != 1 ]; then
  echo "error: no CUDA device visible to PyTorch (--dry-run checks the rest on a CPU)" >&2
  exit 2
fi
GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu-dry-run')" \
      | tr ' /' '__')
SUMMARY="$OUT_DIR/summary_${GPU}.md"
{
  echo "# GPU check on ${GPU//_/ }"
  echo
  echo "$(head -n 2 "$OUT_DIR/env.txt" | tr '\n' ' ')($(date -u +%F))"
  echo
  echo "## CUDA tests"
  echo '```'
} > "$SUMMARY"

# 3. the CUDA test-suite
PYTEST=("$PY" -m pytest -m cuda -p no:cacheprovider)
set +e
if [ "$DRY" = 1 ]; then
  "${PYTEST[@]}" --collect-only -q > "$OUT_DIR/cuda_tests.log" 2>&1
else
  timeout "$TEST_TIMEOUT" "${PYTEST[@]}" -q -rfEs --tb=short --durations=15 \
    --junitxml="$OUT_DIR/cuda_tests.xml" > "$OUT_DIR/cuda_tests.log" 2>&1
fi
TESTS_RC=$?
set -e
tail -n 40 "$OUT_DIR/cuda_tests.log" | tee -a "$SUMMARY"
echo '```' >> "$SUMMARY"

# 4. benchmarks (a failure or timeout of one does not stop the others)
MODELS="esc esc_light esc_fp elan_light swinir_light"
bench() {  # bench <title> <args...>
  local title=$1; shift
  printf '\n## %s\n\n' "$title" >> "$SUMMARY"
  if [ "$DRY" = 1 ]; then
    echo "would run: $PY -m esc_basicsr.benchmark $*" | tee -a "$SUMMARY"
  else
    timeout "$BENCH_TIMEOUT" "$PY" -m esc_basicsr.benchmark "$@" 2>>"$OUT_DIR/bench_stderr.log" | tee -a "$SUMMARY" \
      || echo "(benchmark failed or timed out: see bench_stderr.log)" | tee -a "$SUMMARY"
  fi
}
if [ "$BENCH" = 1 ]; then
  for PREC in fp32 bf16 fp16; do
    bench "Inference x2, 1280x720 output, $PREC" --device cuda --precision "$PREC" --scale 2 --models $MODELS \
      --baseline swinir_light --json "$OUT_DIR/cuda_${GPU}_x2_1280x720_${PREC}.json"
  done
  for PREC in fp32 bf16; do
    bench "Training step x2 (batch 64, LR patch 64), $PREC" --train --device cuda --precision "$PREC" --scale 2 \
      --batch-size 64 --patch 64 --models esc esc_light esc_fp swinir_light --baseline swinir_light \
      --json "$OUT_DIR/cuda_${GPU}_train_x2_b64_p64_${PREC}.json"
  done
fi
echo "GPU check written to $OUT_DIR (summary: $SUMMARY; CUDA tests exit code $TESTS_RC)"
exit "$TESTS_RC"
