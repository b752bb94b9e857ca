"""How the fixes report what stops a BasicSR pipeline: one line and an exit code when it runs as a command.

``python -m basicsr.train`` (and ``.test``, ``esc_basicsr.train``/``.test``) end in a Python traceback for
whatever goes wrong, including a user's mistake in an option file. Run as a command, the fixes print
``error: <message>`` on stderr and exit with 2 (a user error, as ``argparse`` does) or 1 (the machine: a
full disk); called from Python (tests, a user's script) they raise the exception as usual.
"""
from __future__ import annotations

import sys
from typing import NoReturn

# modules whose ``python -m`` run is a BasicSR pipeline command
PIPELINE_MODULES = ('basicsr.train', 'basicsr.test', 'esc_basicsr.train', 'esc_basicsr.test')

_state = {'command': False}  # set by esc_basicsr's own entry points when they read sys.argv


def set_command(active: bool = True) -> None:
    """Mark this process as running a pipeline command (esc_basicsr's entry points called without argv)."""
    _state['command'] = active


def running_as_command() -> bool:
    """Whether a BasicSR pipeline is this process's command (``python -m basicsr.train``, ``esc-train``, ...)."""
    if _state['command']:
        return True
    main = sys.modules.get('__main__')
    return getattr(getattr(main, '__spec__', None), 'name', None) in PIPELINE_MODULES


def report(exc: BaseException, code: int = 2) -> NoReturn:
    """As a command: print ``error: <exc>`` and exit with ``code``; else raise ``exc``. A message of one
    line stays one line (wrapped whitespace joined); one that lists several problems (every missing
    dataset) keeps one line per problem."""
    if not running_as_command():
        raise exc
    lines = [' '.join(line.split()) for line in str(exc).splitlines()]
    message = '\n'.join(line for line in lines if line) or type(exc).__name__
    print(f'error: {message}', file=sys.stderr, flush=True)
    raise SystemExit(code) from None
