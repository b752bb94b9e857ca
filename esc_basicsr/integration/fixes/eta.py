"""Fix of the ETA in ``basicsr.utils.logger.MessageLogger.__call__`` (BasicSR 1.4.2; same code in its
development version).

BasicSR estimates the time left as ``(time since start) / (current_iter - start_iter + 1) * (total_iter -
current_iter - 1)``. A fresh training resets the start after iteration 1, so the first logged iterations
divide the time of ``current_iter - 1`` iterations by ``current_iter + 1`` (``eta: 0:00:00`` at iteration 1,
too low after), and the last one multiplies by ``-1``: ``eta: -1 day, 23:59:57``.

Fixed: the same wall-clock estimate with the right counts (the iterations since BasicSR's start time, the
iterations left), and ``eta: estimating`` until an iteration has been timed. The rest of the message (and
the tensorboard scalars) are BasicSR's: its message is taken before it is logged and only the ``eta`` is
replaced.
"""
from __future__ import annotations

import datetime
import functools
import re
import time
from typing import Callable

from ._patching import marked, replace

_ETA = re.compile(r'\[eta: (-?\d+ days?, )?[^,\]]*, ')  # str(timedelta): '0:01:30', '-1 day, 23:59:57'


class _Capture:
    """Stands in for the message logger's ``logger`` while BasicSR formats its message."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)


def eta_text(elapsed: float, timed_iters: int, iters_left: int) -> str:
    """``0:04:10``, or ``estimating`` while no iteration is timed (``timed_iters`` < 1 or no time passed)."""
    if iters_left <= 0:
        return '0:00:00'
    if timed_iters < 1 or elapsed <= 0:
        return 'estimating'
    return str(datetime.timedelta(seconds=round(elapsed / timed_iters * iters_left)))


def _fixed_call(original: Callable) -> Callable:
    @functools.wraps(original)
    def __call__(self, log_vars):
        if 'time' not in log_vars or not hasattr(self, 'logger'):
            return original(self, log_vars)
        current_iter = log_vars['iter']
        # BasicSR's train_pipeline resets the start time after iteration 1 of a fresh training (start_iter 0);
        # a resumed one keeps the time the logger was made, before its first iteration
        timed = current_iter - 1 if self.start_iter == 0 else current_iter - self.start_iter
        eta = eta_text(time.time() - self.start_time, timed, self.max_iters - current_iter)
        logger, capture = self.logger, _Capture()
        self.logger = capture
        try:
            original(self, log_vars)
        finally:
            self.logger = logger
        for message in capture.messages:  # none on a process other than rank 0 (@master_only)
            logger.info(_ETA.sub(f'[eta: {eta}, ', message, count=1))

    return marked(__call__, original)


def expected(func: Callable) -> bool:
    """Whether ``func`` is BasicSR's message formatter with the ETA above (under its ``@master_only``)."""
    code = getattr(getattr(func, '__wrapped__', func), '__code__', None)
    return code is not None and {'eta_sec', 'eta_str', 'time_sec_avg'} <= set(code.co_varnames)


def install() -> None:
    """Replace ``MessageLogger.__call__`` where it is BasicSR's (idempotent)."""
    from basicsr.utils.logger import MessageLogger

    if expected(MessageLogger.__call__):
        replace(MessageLogger, '__call__', _fixed_call)
