#!/usr/bin/env bash
# The GPU check in one command that fits a lent GPU (one command <= 540 s; see benchmarks/README.md):
#   ./scripts/gpu_check.sh [--dry-run] [--no-bench] [--plan] [--limit-s S] [OUT_DIR]
# OUT_DIR: default $OUT (the lent machine's folder that comes back), else benchmarks/runs; a relative one is
# taken from the folder you call the script in.
# The plan (benchmarks/gpu_plans.py; each step time-boxed, summary rewritten after every step):
#   install   40 s  the wheels carried in .whl/ (../shared/device/prepare.sh makes them; no package registry:
#                   without them, `error: ...` and exit code 2), then env.txt (torch, CUDA, GPU, TF32 defaults)
#   tests   4x60 s  the CUDA-marked tests in four chunks, most important first (flex compile and CUDA graphs;
#                   fixtures and reduced precision; the recompile matrix; the rest), each with its own
#                   junit XML and log; time a chunk leaves unused goes to the next
#   bench     60 s  the paper's table in strict fp32: ESC, ESC-light vs SwinIR-light, x2, 1280x720 output
#   reserve   20 s  = 360 s (--limit-s S scales every step in proportion)
# Writes OUT_DIR/gpu_check_<GPU>.md and .json (every step's outcome, test counts, failures, the table),
# OUT_DIR/gpu_check_<GPU>_x2_fp32.json and OUT_DIR/gpu_check_logs/.
# --dry-run (no GPU needed): the same plan on the CPU (the CUDA tests collected and skipped, the benchmark at
# 16x16). --plan: print the plan only. Exit code: 0 every step ok, 1 a test failed or a step was cut,
# 2 no wheels / no CUDA device / bad arguments.
set -euo pipefail
DRY=() BENCH=() PLAN=() LIMIT=() OUT_DIR=
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=(--dry-run) ;;
    --no-bench) BENCH=(--no-bench) ;;
    --plan) PLAN=(--plan) ;;
    --limit-s) [ $# -ge 2 ] || { echo "error: --limit-s needs seconds" >&2; exit 2; }; LIMIT=(--limit-s "$2"); shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$OUT_DIR" ] || { echo "error: one OUT_DIR only" >&2; exit 2; }; OUT_DIR=$1 ;;
  esac
  shift
done
source "$(dirname "$0")/gpu_common.sh"
exec "$PY" -m benchmarks.gpu_plans check --python "$PY" --out "$OUT_DIR" \
  ${DRY[@]+"${DRY[@]}"} ${BENCH[@]+"${BENCH[@]}"} ${PLAN[@]+"${PLAN[@]}"} ${LIMIT[@]+"${LIMIT[@]}"}
