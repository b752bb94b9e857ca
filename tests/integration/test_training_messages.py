"""What BasicSR's training says, through its own entry points: the ETA (fixes/eta.py), a line before
validation (fixes/validation_message.py), no runpy warning for ``python -m basicsr.train`` (fixes/runpy_warning.py),
and a training under the demo's time plan (tools/time_plan.py) that re-plans and ends early."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.helpers import make_data, reset_basicsr_logger, tiny_train_options, write_options


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def _logged_eta(monkeypatch, start_iter: int, calls: list[tuple[float, int]], total: int = 100, fixed: bool = True):
    """The ``eta`` of BasicSR's MessageLogger for log calls (time, iteration), its start at time 0 (and, in a fresh
    training, reset after iteration 1 at time 1, as ``train_pipeline`` does)."""
    import esc_basicsr.integration  # noqa: F401  (the fixes)
    from basicsr.utils.logger import MessageLogger

    clock = {'now': 0.0}
    monkeypatch.setattr(time, 'time', lambda: clock['now'])
    opt = {'name': 'eta_test', 'logger': {'print_freq': 1, 'use_tb_logger': False}, 'train': {'total_iter': total}}
    msg_logger = MessageLogger(opt, start_iter)
    msg_logger.logger = lines = _Lines()
    if start_iter == 0:
        clock['now'] = 1.0
        msg_logger.reset_start_time()
    call = MessageLogger.__call__ if fixed else MessageLogger.__call__.__wrapped__
    for now, current_iter in calls:
        clock['now'] = now
        call(msg_logger, {'epoch': 0, 'iter': current_iter, 'lrs': [1e-3], 'time': 1.0, 'data_time': 0.01,
                          'l_pix': 0.5})
    return [re.search(r'\[eta: ((-?\d+ days?, )?[^,]*), time \(data\)', line).group(1) for line in lines.lines]


def test_eta_estimating_then_right_and_never_negative(monkeypatch):
    """1 s per iteration: iteration 10 of 100 at 10 s leaves 90 s; the last iteration leaves nothing."""
    assert _logged_eta(monkeypatch, 0, [(1.0, 1), (10.0, 10), (100.0, 100)]) == ['estimating', '0:01:30', '0:00:00']
    # a resumed training (start iteration 50, no reset): 10 iterations in 10 s, 40 left
    assert _logged_eta(monkeypatch, 50, [(10.0, 60)]) == ['0:00:40']
    # more than a day left (BasicSR's own estimate then has a comma too)
    assert _logged_eta(monkeypatch, 0, [(10.0, 10)], total=10 ** 6) == ['11 days, 13:46:30']


def test_eta_bug_of_basicsr(monkeypatch):
    """What BasicSR 1.4.2 itself prints (the replaced function), at 2 s per iteration: 0 at first, -1 day at the end."""
    assert _logged_eta(monkeypatch, 0, [(1.0, 1), (199.0, 100)], fixed=False) == ['0:00:00', '-1 day, 23:59:59']


@pytest.mark.parametrize('module', ['basicsr.train', pytest.param('basicsr.test', marks=pytest.mark.slow)])
def test_python_m_basicsr_has_no_runpy_warning(tmp_path, module):
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS='default')
    run = subprocess.run([sys.executable, '-m', module, '-h'], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith('usage:')
    assert 'RuntimeWarning' not in run.stderr, run.stderr


@pytest.mark.slow
def test_runpy_warning_is_basicsrs_own(tmp_path):
    """Without esc_basicsr's registration the warning is there: BasicSR's package imports basicsr.train."""
    env = dict(os.environ, PYTHONPATH=str(REPO), ESC_BASICSR_AUTOLOAD='0')
    run = subprocess.run([sys.executable, '-m', 'basicsr.train', '-h'], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert "RuntimeWarning: 'basicsr.train' found in sys.modules" in run.stderr


@pytest.fixture()
def data(tmp_path_factory) -> dict[str, Path]:
    return make_data(tmp_path_factory.mktemp('data'))


def test_time_plan_ends_training_early_and_validation_is_announced(data, tmp_path, monkeypatch, capsys):
    """A deadline already passed: the training of 12 iterations re-plans at its first check to ``min_iter`` (4),
    says so, compresses nothing it has passed, ends there with BasicSR's final save and validation, and the
    plan file holds the new total."""
    from esc_basicsr import train as esc_train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', sys.argv[:1])
    opt_file = write_options(tiny_train_options(data, 'time_plan', total_iter=12, checkpoint_freq=100),
                             tmp_path / 'train.yml')
    plan = tmp_path / 'plan.json'
    plan.write_text(json.dumps(dict(total_iter=12, deadline=time.time() - 1, min_iter=4, check_every=2,
                                    label='demo')))
    reset_basicsr_logger()
    try:
        esc_train.main(['--time-plan', str(plan), '-opt', str(opt_file)])
    finally:
        reset_basicsr_logger()
    out = capsys.readouterr().out
    assert re.search(r'^\[demo\] re-planned: 1 iterations left fit in 0\.0 min \(was 9 left; ', out, re.M), out
    saved = json.loads(plan.read_text())
    assert saved['total_iter'] == 4 and saved['replans'][0]['old'] == 12 and saved['replans'][0]['new'] == 4
    exp = tmp_path / 'experiments' / 'time_plan'
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    log = next(exp.glob('train_time_plan_*.log')).read_text()
    assert 'iter:       4' in log and 'iter:       5' not in log
    assert 'End of training' in log
    assert re.search(r'Validating on Set5 \(2 images\) \.\.\.\n.*\n?.*Validation Set5', log), log[-1500:]
    assert '-1 day' not in log and 'eta: estimating' in log
