#!/usr/bin/env bash
# Issue 21's GPU goals measured in one command that fits a lent GPU (<= 540 s; see benchmarks/README.md):
#   ./scripts/gpu_speed.sh [--dry-run] [--plan] [--limit-s S] [OUT_DIR] [-- ARGS for python -m benchmarks.gpu_speed]
# OUT_DIR: default $OUT (the lent machine's folder that comes back), else benchmarks/runs; a relative one is
# taken from the folder you call the script in.
# The plan (benchmarks/gpu_plans.py; each step time-boxed):
#   install   40 s  as gpu_check.sh: the wheels in .whl/ only (none: `error: ...`, exit code 2), env.txt
#   measure  365 s  python -m benchmarks.gpu_speed --budget-s (its time left - 10): ESC x2 at a 1280x720
#                   output in strict fp32, TF32, bf16 and fp16 and the training steps of ESC and SwinIR-light
#                   first, then the candidate settings (compile, CUDA graphs, low-rank bias, flex kernel
#                   options, channels-last) while the budget lasts; every row against ESC in float32 on the CPU
#   reserve   15 s  = 420 s (--limit-s S scales both steps in proportion)
# Writes OUT_DIR/gpu_speed_<GPU>.json and .md (goals met / unmet / not measured; rewritten after every row),
# the steps' summary OUT_DIR/gpu_speed_run_<GPU>.md and .json, and OUT_DIR/gpu_speed_run_logs/.
# --dry-run (no GPU needed): the same on the CPU, tiny sizes and a tiny ESC (~30-60 s). --plan: the plan only;
# `python -m benchmarks.gpu_speed --plan` lists the measurement's rows with their expected seconds.
# Exit code: 0 every row that ran succeeded, 1 a row failed or was cut, 2 no wheels / no CUDA / bad arguments.
set -euo pipefail
DRY=() PLAN=() LIMIT=() OUT_DIR= EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=(--dry-run) ;;
    --plan) PLAN=(--plan) ;;
    --limit-s) [ $# -ge 2 ] || { echo "error: --limit-s needs seconds" >&2; exit 2; }; LIMIT=(--limit-s "$2"); shift ;;
    --) shift; EXTRA=(-- "$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$OUT_DIR" ] || { echo "error: one OUT_DIR only" >&2; exit 2; }; OUT_DIR=$1 ;;
  esac
  shift
done
source "$(dirname "$0")/gpu_common.sh"
exec "$PY" -m benchmarks.gpu_plans speed --python "$PY" --out "$OUT_DIR" \
  ${DRY[@]+"${DRY[@]}"} ${PLAN[@]+"${PLAN[@]}"} ${LIMIT[@]+"${LIMIT[@]}"} ${EXTRA[@]+"${EXTRA[@]}"}
