#!/usr/bin/env bash
# The installation step of scripts/gpu_check.sh and scripts/gpu_speed.sh (run by benchmarks/timebox.py):
#   scripts/gpu_env.sh PYTHON LOG_DIR DRY_RUN(0|1) "MODULES"
# When PYTHON cannot import MODULES (space-separated; checked outside the checkout, so that only an installed
# esc_basicsr counts), installs the wheels carried in .whl/ (GPU_WHEELS to use another folder) and this
# checkout, without a package index: `pip install --no-index --no-deps .whl/*.whl .` (the wheels are made by
# ../shared/device/prepare.sh on a machine with one). Never asks a package registry: without wheels it stops
# with one line `error: ...` and exit code 2. Then writes LOG_DIR/env.txt (Python, torch, CUDA, GPU, TF32
# defaults); exit code 2 as well when no CUDA device is visible and DRY_RUN is 0. Log: LOG_DIR/install.log.
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: $0 PYTHON LOG_DIR DRY_RUN MODULES" >&2; exit 64; }
PY=$1 LOG_DIR=$2 DRY=$3 MODULES=$4
WHEELS=${GPU_WHEELS:-.whl}
mkdir -p "$LOG_DIR"
imports() { (cd / && "$PY" -c "import ${MODULES// /, }") >/dev/null 2>&1; }

if imports; then
  echo "$PY imports $MODULES: nothing to install" | tee "$LOG_DIR/install.log"
elif compgen -G "$WHEELS/*.whl" >/dev/null; then
  # the wheels first (pip skips those already installed), then this checkout, reinstalled even at the same
  # version: a warm machine may hold the package of an earlier copy
  { "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir "$WHEELS"/*.whl \
    && "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --force-reinstall . ; } \
    > "$LOG_DIR/install.log" 2>&1
  if [ $? -ne 0 ] || ! imports; then
    tail -n 5 "$LOG_DIR/install.log" >&2
    echo "error: installing from $WHEELS/ failed (see $LOG_DIR/install.log): $PY still cannot import $MODULES" >&2
    exit 2
  fi
  echo "installed from $WHEELS/: $(cd "$WHEELS" && ls -1 -- *.whl | tr '\n' ' ')" | tee -a "$LOG_DIR/install.log"
else
  echo "error: $PY cannot import $MODULES and $WHEELS/ holds no wheels; make them with" \
       "../shared/device/prepare.sh on a machine with a package index and carry .whl/ along" \
       "(the device's run: carry [\".whl\"]); no package registry is used" | tee "$LOG_DIR/install.log" >&2
  exit 2
fi

"$PY" - "$DRY" > "$LOG_DIR/env.txt" <<'PY'
import platform, sys
import torch
print('python', platform.python_version(), '| torch', torch.__version__, '| CUDA', torch.version.cuda)
if torch.cuda.is_available():
    print('GPU', torch.cuda.get_device_name(0), '| capability', torch.cuda.get_device_capability(0))
else:
    print('GPU none visible to PyTorch')
print('TF32 defaults: cudnn.allow_tf32 =', torch.backends.cudnn.allow_tf32,
      '| cuda.matmul.allow_tf32 =', torch.backends.cuda.matmul.allow_tf32)
sys.exit(0 if torch.cuda.is_available() or sys.argv[1] == '1' else 3)
PY
RC=$?
cat "$LOG_DIR/env.txt"
if [ "$RC" = 3 ]; then
  echo "error: no CUDA device visible to PyTorch (--dry-run checks the rest on a CPU)" >&2
  exit 2
fi
exit "$RC"
