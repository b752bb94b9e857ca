"""Training against a deadline: the remaining iterations re-planned against the remaining time.

The demo promises a training time (``N iterations fit in 11 min``) from one timed step; on a shared
machine the load changes while it trains (one run planned 11 min and trained 19.1). With a time plan
(``python -m esc_basicsr.train --time-plan demo_plan.json -opt ...``), BasicSR's own
``train_pipeline`` runs unchanged, and every ``check_every`` iterations :class:`Replanner` compares
the iterations left, at the recent seconds per iteration, with the time left before the deadline.
When they no longer fit it lowers the total (never below ``min_iter``, never above the option
file's ``total_iter``) and says so in one line; the learning-rate schedule (cosine periods,
multi-step milestones, warm-up) is compressed to the new total, and the loop ends there: BasicSR's
prefetcher reports the end of the data, after which BasicSR saves the latest model and validates as
after any training.

The plan file (JSON) holds ``deadline`` (Unix time by which training should end), ``total_iter``,
and optionally ``min_iter`` (default 1), ``check_every`` (10), ``end_seconds`` (5: the final save)
and ``label`` (the prefix of the message, ``time plan``). A re-plan rewrites ``total_iter`` there
and appends to ``replans``, so that a resumed run and the demo's report know the new total.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator


@dataclass
class Replan:
    """A lowered total: at iteration ``at``, ``old`` -> ``new`` iterations, ``seconds_left`` before the deadline,
    ``seconds_per_iter`` the recent rate."""

    at: int
    old: int
    new: int
    seconds_left: float
    seconds_per_iter: float

    def message(self) -> str:
        """``re-planned: 130 iterations left fit in 4.2 min (was 250 left; 1.90 s per iteration now)``."""
        left = self.new - self.at
        was = f'(was {self.old - self.at} left; {self.seconds_per_iter:.2f} s per iteration now)'
        needed = left * self.seconds_per_iter
        if needed > self.seconds_left + 1:  # held at min_iter
            return (f're-planned: {left} iterations left (no fewer are planned) take {needed / 60:.1f} min, more than '
                    f'the {self.seconds_left / 60:.1f} min left {was}')
        return f're-planned: {left} iterations left fit in {self.seconds_left / 60:.1f} min {was}'


@dataclass
class Replanner:
    """Decides the total number of iterations as training goes (pure: the caller passes the time).

    Args:
        total_iter: the planned total.
        deadline: the time (same clock as ``now`` of :meth:`step`) by which training should end.
        min_iter: never plan fewer.
        check_every: re-plan at most every this many iterations.
        window: the seconds per iteration are those of the last ``window`` iterations (the load now,
            not the average since the start), or of the last ``check_every`` where these were slower.
        end_seconds: what training needs after its last iteration (the final save).
        tolerance: an overrun below this fraction of the time left (and below 5 s) is not re-planned.
    """

    total_iter: int
    deadline: float
    min_iter: int = 1
    check_every: int = 10
    window: int = 30
    end_seconds: float = 5.0
    tolerance: float = 0.02
    replans: list[Replan] = field(default_factory=list)
    _stamps: deque = field(default_factory=deque, repr=False)
    _checked: int | None = field(default=None, repr=False)  # the iteration of the last check

    def step(self, done: int, now: float) -> Replan | None:
        """Iteration ``done`` has just finished at ``now``: the new plan if it changed, else None.

        The first iteration's time is not counted (it includes one-off set-up).
        """
        if done < 1 or (self._stamps and self._stamps[-1][0] >= done):
            return None
        self._stamps.append((done, now))
        while len(self._stamps) > 2 and self._stamps[1][0] <= done - self.window:
            self._stamps.popleft()
        first_done, first_time = self._stamps[0]
        if self._checked is None:
            self._checked = done
        if done - self._checked < self.check_every:
            return None
        self._checked = done
        # the slower of the last `window` and the last `check_every` iterations: a slowdown counts at once,
        # a speed-up only once it lasts (the promise is "at most", so err towards ending early)
        recent_done, recent_time = next(((d, t) for d, t in self._stamps if d >= done - self.check_every),
                                         (first_done, first_time))
        per_iter = max((now - first_time) / (done - first_done),
                       (now - recent_time) / max(1, done - recent_done))
        left = self.deadline - now - self.end_seconds
        fit = max(0, math.floor(left / per_iter)) if per_iter > 0 else self.total_iter
        overrun = (self.total_iter - done) * per_iter - left
        if overrun <= max(5.0, self.tolerance * max(left, 0.0)):
            return None
        new = max(self.min_iter, done + fit, done + 1)
        if new >= self.total_iter:
            return None
        replan = Replan(done, self.total_iter, new, max(left, 0.0), per_iter)
        self.total_iter = new
        self.replans.append(replan)
        return replan


def compress_schedule(model: Any, done: int, old: int, new: int) -> None:
    """Scale the learning-rate schedule of a BasicSR ``model`` from ``old`` to ``new`` iterations; what lies
    before iteration ``done`` is left as it was.

    BasicSR's ``CosineAnnealingRestartLR`` (``periods``) and ``MultiStepRestartLR`` (``milestones``) compute the
    rate from these attributes at every step, so changing them mid-run is enough; the warm-up is read from
    ``opt['train']['warmup_iter']`` at every iteration. Other schedulers are left alone (the loop still ends
    at ``new``).
    """
    def scaled(point: int) -> int:
        return point if point <= done else max(done + 1, round(point * new / old))

    for scheduler in getattr(model, 'schedulers', []):
        if isinstance(getattr(scheduler, 'periods', None), list) and hasattr(scheduler, 'cumulative_period'):
            ends, last = [], 0
            for end in scheduler.cumulative_period:
                last = max(last + 1, scaled(end))
                ends.append(last)
            scheduler.periods = [b - a for a, b in zip([0, *ends[:-1]], ends)]
            scheduler.cumulative_period = ends
        elif isinstance(getattr(scheduler, 'milestones', None), Counter):
            scheduler.milestones = Counter({scaled(m): n for m, n in scheduler.milestones.items()})
    train_opt = getattr(model, 'opt', {}).get('train', {})
    warmup = train_opt.get('warmup_iter', -1)
    if isinstance(warmup, int) and warmup > done:
        train_opt['warmup_iter'] = scaled(warmup)


class _PlannedPrefetcher:
    """BasicSR's prefetcher, ending the data (``next() -> None``) once the plan's total is reached."""

    def __init__(self, inner: Any, hook: 'TimePlanHook') -> None:
        self._inner, self._hook = inner, hook

    def next(self):
        if self._hook.finished():
            return None
        batch = self._inner.next()
        if batch is not None:
            self._hook.served += 1
        return batch

    def reset(self) -> None:
        if not self._hook.finished():
            self._inner.reset()


class TimePlanHook:
    """Runs BasicSR 1.4.2's ``train_pipeline`` under a time plan (see the module docstring).

    Inside :meth:`installed`, ``basicsr.train``'s ``build_model``, ``MessageLogger`` and the two prefetchers
    are wrapped to see the model, the start iteration and the data; nothing else of BasicSR changes.
    """

    NAMES = ('build_model', 'MessageLogger', 'CPUPrefetcher', 'CUDAPrefetcher')

    def __init__(self, plan_file: Path, clock=time.time) -> None:
        self.plan_file = Path(plan_file)
        self.plan = json.loads(self.plan_file.read_text())
        self.clock = clock
        self.replanner = Replanner(int(self.plan['total_iter']), float(self.plan['deadline']),
                                   min_iter=int(self.plan.get('min_iter', 1)),
                                   check_every=int(self.plan.get('check_every', 10)),
                                   end_seconds=float(self.plan.get('end_seconds', 5.0)))
        self.label = str(self.plan.get('label', 'time plan'))
        self.model = self.msg_logger = None
        self.start_iter = 0
        self.served = 0  # batches handed to the training loop by this process

    def done(self) -> int:
        return self.start_iter + self.served

    def finished(self) -> bool:
        """Whether the plan's total is reached (checked, and re-planned, after every iteration)."""
        done = self.done()
        replan = self.replanner.step(done, self.clock()) if self.served else None
        if replan is not None:
            self._apply(replan)
        return done >= self.replanner.total_iter

    def _apply(self, replan: Replan) -> None:
        print(f'[{self.label}] {replan.message()}', flush=True)
        if self.model is not None:
            compress_schedule(self.model, replan.at, replan.old, replan.new)
        if self.msg_logger is not None:
            self.msg_logger.max_iters = replan.new  # BasicSR's ETA
        self.plan['total_iter'] = replan.new
        self.plan.setdefault('replans', []).append(dict(at=replan.at, old=replan.old, new=replan.new,
                                                        seconds_left=round(replan.seconds_left, 1),
                                                        seconds_per_iter=round(replan.seconds_per_iter, 3)))
        tmp = self.plan_file.with_name(self.plan_file.name + f'.{os.getpid()}.tmp')
        tmp.write_text(json.dumps(self.plan, indent=1) + '\n')
        tmp.replace(self.plan_file)

    @contextlib.contextmanager
    def installed(self) -> Iterator['TimePlanHook']:
        """Wrap ``basicsr.train``'s names for the duration of one ``train_pipeline`` call."""
        from ..integration.basicsr_import import import_basicsr

        import_basicsr()
        import basicsr.train as bt

        originals = {name: getattr(bt, name, None) for name in self.NAMES}
        if any(not callable(value) for value in originals.values()):
            missing = [name for name, value in originals.items() if not callable(value)]
            raise RuntimeError(f'--time-plan needs BasicSR 1.4.2\'s train_pipeline; basicsr.train has no {missing}')
        hook = self

        def build_model(opt):
            hook.model = originals['build_model'](opt)
            return hook.model

        def message_logger(opt, start_iter=1, tb_logger=None):
            hook.msg_logger = originals['MessageLogger'](opt, start_iter, tb_logger)
            hook.start_iter = start_iter  # 0, or the iteration a resumed training starts from
            hook.replanner.total_iter = min(hook.replanner.total_iter, int(opt['train']['total_iter']))
            hook.msg_logger.max_iters = hook.replanner.total_iter
            return hook.msg_logger

        bt.build_model, bt.MessageLogger = build_model, message_logger
        bt.CPUPrefetcher = lambda loader: _PlannedPrefetcher(originals['CPUPrefetcher'](loader), hook)
        bt.CUDAPrefetcher = lambda loader, opt: _PlannedPrefetcher(originals['CUDAPrefetcher'](loader, opt), hook)
        try:
            yield self
        finally:
            for name, value in originals.items():
                setattr(bt, name, value)
