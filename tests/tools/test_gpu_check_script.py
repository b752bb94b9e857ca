"""``scripts/gpu_check.sh --dry-run`` on the CPU: the installation check and environment report (shared with
gpu_speed.sh through scripts/gpu_env.sh), the CUDA tests collected, the benchmark commands planned, a summary."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_dry_run_of_the_gpu_check(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop('OUT', None)
    proc = subprocess.run(['bash', str(REPO / 'scripts' / 'gpu_check.sh'), '--dry-run', str(tmp_path)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / 'env.txt').read_text().startswith('python ')
    assert 'TF32 defaults' in (tmp_path / 'env.txt').read_text()
    assert ' collected' in (tmp_path / 'cuda_tests.log').read_text()
    assert proc.stdout.count('would run: ') == 5  # three inference precisions, two training ones
    assert list(tmp_path.glob('summary_*.md'))


def test_unknown_option_is_refused(tmp_path):
    proc = subprocess.run(['bash', str(REPO / 'scripts' / 'gpu_check.sh'), '--bogus'], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 64 and 'unknown option --bogus' in proc.stderr
