"""``python -m esc_basicsr.train -opt X.yml [--auto_resume] [--launcher pytorch]`` (also ``esc-train``).

BasicSR's own ``train_pipeline`` with ``experiments/`` and ``tb_logger/`` under the current
directory (see :mod:`esc_basicsr.integration.pipelines`). All BasicSR arguments are accepted.

``--time-plan PLAN.json`` (esc_basicsr's own, taken out before BasicSR reads the arguments): train
against a deadline, re-planning the remaining iterations against the remaining time
(:mod:`esc_basicsr.tools.time_plan`; the demo uses it).
"""
from __future__ import annotations

import sys
from pathlib import Path

from .integration.pipelines import train as _train


def _take_time_plan(args: list[str]) -> tuple[str | None, list[str]]:
    """``--time-plan FILE`` (or ``--time-plan=FILE``) out of ``args``: (FILE or None, the other arguments)."""
    rest, plan = [], None
    it = iter(args)
    for arg in it:
        if arg == '--time-plan':
            plan = next(it, '')
        elif arg.startswith('--time-plan='):
            plan = arg.split('=', 1)[1]
        else:
            rest.append(arg)
    return plan, rest


def _launcher(args: list[str]) -> str:
    """The value of BasicSR's ``--launcher`` in ``args`` (``none`` when absent)."""
    for i, arg in enumerate(args):
        if arg.startswith('--launcher='):
            return arg.split('=', 1)[1]
        if arg == '--launcher' and i + 1 < len(args):
            return args[i + 1]
    return 'none'


def main(argv: list[str] | None = None) -> None:
    """BasicSR's ``train_pipeline`` with ``argv`` (default ``sys.argv[1:]``), under a time plan if given."""
    plan, rest = _take_time_plan(sys.argv[1:] if argv is None else argv)
    if plan is None:
        return _train(argv)
    problem = None if Path(plan).is_file() else f'--time-plan: no file {plan!r}'
    if _launcher(rest) != 'none':  # each rank would re-plan on its own clock and stop at another iteration
        problem = '--time-plan is for a single process (--launcher none): ranks would stop at different iterations'
    if problem:
        if argv is not None:
            raise ValueError(problem)
        print(f'error: {problem}', file=sys.stderr)
        raise SystemExit(2)
    from .tools.time_plan import TimePlanHook

    if argv is None:
        sys.argv = [sys.argv[0], *rest]  # BasicSR's parse_options reads sys.argv
    with TimePlanHook(Path(plan)).installed():
        _train(None if argv is None else rest)


if __name__ == '__main__':
    main()
