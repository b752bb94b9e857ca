#!/usr/bin/env bash
# The README's main job, offline: set up .venv (if needed), then prepare data from scikit-image's bundled
# photographs, train ESC-light x2 on the CPU for a few minutes with BasicSR, test it, compare with bicubic.
#   bash scripts/demo.sh [--workdir demo_workdir] [--minutes 9] [--retrain]
#   bash scripts/demo.sh --arbitrary-scale [--iters 400]   # ESC-LTE, tested at x2.5 (demo_workdir_lte)
# Both write a comparison figure (input, bicubic, model, ground truth) and print its path.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m esc_basicsr.demo "$@"
