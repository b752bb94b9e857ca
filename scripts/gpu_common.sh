# Sourced by scripts/gpu_check.sh and scripts/gpu_speed.sh after their arguments are read (OUT_DIR set):
# OUT_DIR (default $OUT, else benchmarks/runs of the checkout) made absolute against the caller's folder, then
# into the checkout (python -m benchmarks.* imports from it); PY: $PYTHON, else .venv/bin/python, else python3.
CALLER_DIR=$PWD
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT_DIR=${OUT_DIR:-${OUT:-}}
if [ -z "$OUT_DIR" ]; then
  OUT_DIR=$PWD/benchmarks/runs
elif [ "${OUT_DIR#/}" = "$OUT_DIR" ]; then
  OUT_DIR=$CALLER_DIR/$OUT_DIR
fi
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=$PWD/.venv/bin/python
else PY=python3; fi
