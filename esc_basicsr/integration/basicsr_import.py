"""Importing BasicSR from any thread, and the lock under which esc_basicsr changes BasicSR (standard
library only).

Threads: BasicSR may be imported by another thread at any moment (a data loader, a web server). Nothing
of esc_basicsr imports a ``basicsr`` submodule while another thread executes ``basicsr/__init__`` (which
would hand that thread a half-initialised ``basicsr.models``): :func:`import_basicsr` first waits for that
import to finish. It never deadlocks: where the importing thread itself waits for a module this thread is
importing (it is then registering esc_basicsr, ``basicsr`` has executed), Python's import machinery
reports the cycle and this thread goes on. Registering into the registries and installing the fixes is
serialised by :data:`REGISTRATION_LOCK`, which is never held while importing.
"""
from __future__ import annotations

import importlib
import sys
import threading

# held while esc_basicsr changes BasicSR's registries or functions (in-memory steps only, never an import)
REGISTRATION_LOCK = threading.RLock()


def _importing_thread(name: str) -> int | None:
    """Thread id executing the import of module ``name`` (CPython's per-module import lock), if known."""
    bootstrap = sys.modules.get('importlib._bootstrap')
    ref = getattr(bootstrap, '_module_locks', {}).get(name)
    lock = ref() if callable(ref) else None
    return getattr(lock, 'owner', None)


def basicsr_state() -> str:
    """``'absent'``, ``'ready'``, ``'importing here'`` (this thread, or unknown) or ``'importing elsewhere'``."""
    module = sys.modules.get('basicsr')
    if module is None:
        return 'absent'
    if not getattr(getattr(module, '__spec__', None), '_initializing', False):
        return 'ready'
    owner = _importing_thread('basicsr')
    return 'importing elsewhere' if owner is not None and owner != threading.get_ident() else 'importing here'


def import_basicsr():
    """``import basicsr``, waiting for another thread's import of it to finish, without deadlocking (see
    the module docstring); returns the module (half-initialised only when this thread is importing it)."""
    state = basicsr_state()
    if state in ('ready', 'importing here'):
        return sys.modules['basicsr']
    try:
        return importlib.import_module('basicsr')
    except RuntimeError as exc:  # _DeadlockError: the importing thread waits for us, after executing basicsr
        if type(exc).__name__ != '_DeadlockError' or 'basicsr' not in sys.modules:
            raise
        return sys.modules['basicsr']
