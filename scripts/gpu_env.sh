# Sourced by scripts/gpu_check.sh and scripts/gpu_speed.sh (not run on its own):
#   gpu_env OUT_DIR "MODULES"   sets PY to a Python that imports MODULES (space-separated), installing what
#                               is missing, then writes OUT_DIR/env.txt (torch, CUDA, GPU, TF32 defaults).
# Installation: $PYTHON if set, else .venv/bin/python, else python3; when the imports fail, from .whl/ if it
# holds wheels (a machine without a package index: `pip install --no-index --no-deps .whl/*.whl .`, made by
# ../shared/device/prepare.sh), else scripts/setup_env.sh (.venv). The install log goes to OUT_DIR/install.log.
gpu_env() {
  local out_dir=$1 modules=$2
  if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
  elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
  else PY=python3; fi
  if ! "$PY" -c "import ${modules// /, }" >/dev/null 2>&1; then
    if compgen -G ".whl/*.whl" >/dev/null; then
      "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir .whl/*.whl . \
        2>&1 | tee "$out_dir/install.log"
    else
      bash scripts/setup_env.sh 2>&1 | tee "$out_dir/install.log"
      PY=.venv/bin/python
    fi
  fi
  "$PY" - > "$out_dir/env.txt" <<'PY'
import platform, torch
print('python', platform.python_version(), '| torch', torch.__version__, '| CUDA', torch.version.cuda)
if torch.cuda.is_available():
    print('GPU', torch.cuda.get_device_name(0), '| capability', torch.cuda.get_device_capability(0))
else:
    print('GPU none visible to PyTorch')
print('TF32 defaults: cudnn.allow_tf32 =', torch.backends.cudnn.allow_tf32,
      '| cuda.matmul.allow_tf32 =', torch.backends.cuda.matmul.allow_tf32)
PY
  cat "$out_dir/env.txt"
}
