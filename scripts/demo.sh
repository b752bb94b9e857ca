#!/usr/bin/env bash
# The README's main job, offline: set up .venv (if needed), then prepare data from scikit-image's bundled
# photographs, train ESC-light x2 on the CPU for a few minutes with BasicSR, test it, compare with bicubic.
#   bash scripts/demo.sh [--workdir demo_workdir] [--minutes 9] [--retrain]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m esc_basicsr.demo "$@"
