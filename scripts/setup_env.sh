#!/usr/bin/env bash
# Create .venv (if missing) with pinned torch/torchvision and basicsr 1.4.2, and install esc_basicsr.
# basicsr 1.4.2 is an sdist whose build asks for an unpinned torch; building it without isolation
# against the pinned torch avoids a multi-GB download.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
if ! "$VPY" -c "import torch, torchvision, basicsr, esc_basicsr_autoload" >/dev/null 2>&1; then
  "$VPY" -m pip install -q --upgrade pip setuptools wheel
  "$VPY" -m pip install -q $TORCH_SPEC
  "$VPY" -m pip install -q --no-build-isolation "basicsr==1.4.2"
fi
"$VPY" -m pip install -q --no-build-isolation -e ".[test,onnx,plot]"
