#!/usr/bin/env bash
# Issue 21 (GPU speed) measured in one time-boxed run, for a machine with a CUDA GPU (e.g. a lent H100/H200
# without a package index):
#   ./scripts/gpu_speed.sh [--dry-run] [OUT_DIR] [-- ARGS for python -m esc_basicsr.tools.gpu_speed]
# OUT_DIR: default $OUT (the lent machine's folder that comes back), else benchmarks/runs.
# 1. installs what is missing: from .whl/ when it holds wheels (../shared/device/prepare.sh makes them:
#    `pip install --no-index --no-deps .whl/*.whl .`), else scripts/setup_env.sh (.venv); ~30 s;
# 2. writes env.txt (torch, CUDA, GPU, TF32 defaults);
# 3. runs `python -m esc_basicsr.tools.gpu_speed` within BUDGET_S seconds (default 420; the whole command is
#    cut at BUDGET_S + 60): ESC x2 at a 1280x720 output (360x640 input) in strict fp32, fp32 with TF32, bf16
#    and fp16 autocast for the default and each candidate setting (FlexAttention kernel options, low-rank
#    bias, whole-network compile, CUDA graphs, channels-last), against ESC in float32 on the CPU; the training
#    step (batch 32, LR patch 64) of ESC and SwinIR-light in fp32 (TF32) and bf16; one process per row, every
#    ratio within this run. Writes gpu_speed_<GPU>.json and gpu_speed_<GPU>.md (goals met / unmet / not
#    measured) into OUT_DIR after every row, and speed.log. Rows that no longer fit the budget are skipped and
#    listed; `python -m esc_basicsr.tools.gpu_speed --plan` lists every row with its expected seconds.
# --dry-run (no GPU needed): the same on the CPU with tiny sizes and a tiny ESC, in one process (~30 s).
# Exit code: the measurement's (0: every row that ran succeeded; 1: a row failed; 2: no CUDA device).
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0 OUT_DIR= EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 64 ;;
    *) OUT_DIR=$1 ;;
  esac
  shift
done
OUT_DIR=${OUT_DIR:-${OUT:-benchmarks/runs}}
mkdir -p "$OUT_DIR"
BUDGET_S=${BUDGET_S:-420}

# 1. installation and 2. environment (scripts/gpu_env.sh)
source scripts/gpu_env.sh
gpu_env "$OUT_DIR" "torch basicsr esc_basicsr"

# 3. the measurement
ARGS=(--out "$OUT_DIR" --budget-s "$BUDGET_S")
[ "$DRY" = 1 ] && ARGS+=(--dry-run)
set +e
timeout "$((BUDGET_S + 60))" "$PY" -m esc_basicsr.tools.gpu_speed "${ARGS[@]}" "${EXTRA[@]}" 2> "$OUT_DIR/speed.log"
RC=$?
set -e
tail -n 5 "$OUT_DIR/speed.log" >&2
[ "$RC" = 124 ] && echo "gpu_speed: cut at $((BUDGET_S + 60)) s; the files hold every row finished before" >&2
exit "$RC"
