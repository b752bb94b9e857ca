"""``python -m basicsr.train`` / ``basicsr.test`` without runpy's warning (BasicSR 1.4.2; same package
``__init__`` in its development version).

BasicSR's ``basicsr/__init__.py`` ends with ``from .train import *`` and ``from .test import *``. Running
``python -m basicsr.train`` first imports the package, which imports ``basicsr.train``; runpy then executes
the same file again as ``__main__`` and warns, as the first line of every run::

    RuntimeWarning: 'basicsr.train' found in sys.modules after import of package 'basicsr', but prior to
    execution of 'basicsr.train'; this may result in unpredictable behaviour

It appears with or without esc_basicsr (``ESC_BASICSR_AUTOLOAD=0`` shows it too). The "unpredictable
behaviour" is that two module objects exist: the fixes that replace a function imported by name into
``basicsr.train`` also replace it in the ``__main__`` copy (:mod:`.resume`, :mod:`.experiment_folders`,
:mod:`.option_checks`), and the others patch classes, which both copies share. So the warning is
filtered, exactly this message for these two modules; ``python -m esc_basicsr.train`` never triggers it.
"""
from __future__ import annotations

import sys
import warnings

MESSAGE = r"'basicsr\.(train|test)' found in sys\.modules after import of package 'basicsr'"


def expected() -> bool:
    """Whether the executed ``basicsr`` package has imported its ``train`` and ``test`` modules."""
    package = sys.modules.get('basicsr')
    return package is not None and all(f'basicsr.{name}' in sys.modules for name in ('train', 'test'))


def install() -> None:
    """Filter runpy's warning about ``basicsr.train`` / ``basicsr.test`` (idempotent)."""
    if not expected():
        return
    if not any(f[0] == 'ignore' and getattr(f[1], 'pattern', None) == MESSAGE for f in warnings.filters):
        warnings.filterwarnings('ignore', message=MESSAGE, category=RuntimeWarning)
