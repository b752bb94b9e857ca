"""Importing BasicSR from any thread, and the lock under which esc_basicsr changes BasicSR (standard
library only).

Threads: BasicSR may be imported by another thread at any moment (a data loader, a web server). Nothing
of esc_basicsr imports a ``basicsr`` submodule while another thread executes ``basicsr/__init__`` (which
would hand that thread a half-initialised ``basicsr.models``): :func:`import_basicsr` first waits for that
import to finish. It never deadlocks: where the importing thread itself waits for a module this thread is
importing (it is then registering esc_basicsr, ``basicsr`` has executed), Python's import machinery
reports the cycle and this thread goes on. Registering into the registries and installing the fixes is
serialised by :data:`REGISTRATION_LOCK`, which is never held while importing.

The other way round (issue 27): when *this* thread executes ``basicsr/__init__`` and another thread runs
``import basicsr.models``, CPython lets that thread execute ``basicsr/models/__init__`` at once (the parent
is in ``sys.modules``, initialising), holding the module lock of ``basicsr.models``; its first
``from basicsr.models import lr_scheduler`` then waits for the lock of ``basicsr`` (held here), while
``basicsr/__init__`` here waits at ``from .models import *`` for ``basicsr.models``: a cycle, which
CPython breaks by handing one thread a half-initialised module (``partially initialized module
'basicsr.models'``, then ``KeyError: 'basicsr'`` once the failed import is undone). So
:func:`import_basicsr` first takes the module locks of ``basicsr`` and of each of its top-level
submodules, in one thread, without ever waiting for one while holding another (:func:`_hold_package_locks`):
another thread's ``import basicsr.<sub>`` then waits at its very first step, holding nothing, until
BasicSR is imported and registered, and finds complete modules.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import pkgutil
import sys
import threading
from typing import Iterator

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


def _is_deadlock(exc: BaseException) -> bool:
    return type(exc).__name__ == '_DeadlockError'


def _package_module_names() -> list[str]:
    """``basicsr`` and its top-level submodules (``basicsr.archs``, ``basicsr.models``, ...), read from its
    folder without importing it."""
    spec = importlib.util.find_spec('basicsr')
    folders = list(getattr(spec, 'submodule_search_locations', None) or [])
    return ['basicsr', *sorted(f'basicsr.{m.name}' for m in pkgutil.iter_modules(folders))]


@contextlib.contextmanager
def _hold_package_locks() -> Iterator[None]:
    """Hold CPython's module locks of :func:`_package_module_names` (re-entrant for this thread), so that
    another thread's import of any of them waits, holding nothing, until this block ends.

    A lock that another thread holds is never waited for while one is held here (that thread may wait for
    one of ours: a cycle): everything is released, that thread's import is waited for, and it starts again;
    where that thread in turn waits for a module this thread is importing (Python reports the cycle), the
    block runs without the locks.
    """
    bootstrap = importlib.import_module('importlib._bootstrap')
    if not callable(getattr(bootstrap, '_get_module_lock', None)):  # CPython's private API (3.10-3.13) gone:
        yield  # import as before this fix rather than fail
        return
    me = threading.get_ident()
    names = _package_module_names()
    while True:
        held, busy = [], None
        try:
            for name in names:
                lock = bootstrap._get_module_lock(name)
                if getattr(lock, 'owner', None) not in (None, me):
                    busy = lock
                    break
                lock.acquire()  # free a moment ago; raises _DeadlockError in the rare race it is not
                held.append(lock)
        except RuntimeError as exc:
            if not _is_deadlock(exc):
                raise
            busy = lock
        if busy is None:
            try:
                yield
            finally:
                for lock in reversed(held):
                    lock.release()
            return
        for lock in reversed(held):
            lock.release()
        try:  # holding none of these locks, wait for the other thread's import
            busy.acquire()
            busy.release()
        except RuntimeError as exc:
            if not _is_deadlock(exc):
                raise
            # that thread waits for a module this thread is importing (esc_basicsr's, which called us):
            # waiting again would spin; go on without the locks, as import_basicsr did before
            yield
            return


def import_basicsr():
    """``import basicsr``, waiting for another thread's import of it to finish, without deadlocking and
    without letting another thread import a submodule of a half-executed ``basicsr`` (see the module
    docstring); returns the module (half-initialised only when this thread is importing it)."""
    state = basicsr_state()
    if state in ('ready', 'importing here'):
        return sys.modules['basicsr']
    try:
        if state == 'absent':
            with _hold_package_locks():
                return importlib.import_module('basicsr')
        return importlib.import_module('basicsr')
    except RuntimeError as exc:  # _DeadlockError: the importing thread waits for us, after executing basicsr
        if not _is_deadlock(exc) or 'basicsr' not in sys.modules:
            raise
        return sys.modules['basicsr']
