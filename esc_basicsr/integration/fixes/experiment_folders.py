"""Fix of ``basicsr.utils.misc.mkdir_and_rename`` (BasicSR 1.4.2; same code in its development version).

BasicSR makes an experiment (or results, tb_logger) folder by renaming an existing one of the same name to
``<name>_archived_<time>``. Started twice with the same ``name``, the second training renames the *live*
folder of the first, which goes on writing into the new one, where the second's files of the same names
replace its own: the first's models are lost and both exit 0.

Fixed: a pipeline holds an advisory lock (``fcntl.flock`` on ``.esc_basicsr.lock`` in the folder) for as long
as it runs; ``mkdir_and_rename`` of a folder whose lock another process holds refuses (one line, exit code 2
as a command), naming the folder and the process. A folder nobody holds is archived as BasicSR does, so
nothing of a finished or killed run is lost (the lock dies with its process). A resumed training, which
does not make its folder again, takes the lock in :mod:`.resume`. Without ``fcntl`` (Windows) nothing is
locked and BasicSR's behaviour is unchanged.
"""
from __future__ import annotations

import atexit
import functools
import os
import sys
from typing import Callable

from ._command import report
from ._patching import is_ours, marked, replace

LOCK_NAME = '.esc_basicsr.lock'

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_held: dict[str, int] = {}  # real folder path -> fd of its lock file, held by this process


class ExperimentInUseError(RuntimeError):
    """An experiment folder is in use by another running pipeline."""


def _key(folder: str) -> str:
    return os.path.realpath(folder)


def holder(folder: str) -> str | None:
    """The process id (as recorded) of another process that holds ``folder``'s lock, or None."""
    lock = os.path.join(folder, LOCK_NAME)
    if fcntl is None or _key(folder) in _held or not os.path.isfile(lock):
        return None
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        with os.fdopen(os.dup(fd)) as f:
            return f.read().strip() or '?'
    finally:
        os.close(fd)
    return None


def release(folder: str) -> None:
    """Release this process's lock of ``folder`` (an earlier pipeline run in the same process)."""
    fd = _held.pop(_key(folder), None)
    if fd is not None:
        os.close(fd)


def lock(folder: str) -> None:
    """Hold ``folder``'s lock until this process ends (or :func:`release`).

    Raises (through :func:`._command.report`):
        ExperimentInUseError: another process holds it.
    """
    if fcntl is None or _key(folder) in _held or not os.path.isdir(folder):
        return
    path = os.path.join(folder, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        report(in_use(folder, holder(folder) or '?'))
    os.ftruncate(fd, 0)
    os.write(fd, f'{os.getpid()}\n'.encode())
    _held[_key(folder)] = fd


def in_use(folder: str, pid: str) -> ExperimentInUseError:
    return ExperimentInUseError(
        f'{folder} is in use by a running training or test (process {pid}); BasicSR would rename it to '
        '*_archived_* under it and both runs would overwrite each other\'s files. Choose another "name" in the '
        'option file, or wait until that run ends (or stop it); a folder of a finished run is archived as usual.')


@atexit.register
def _release_all() -> None:
    for folder in list(_held):
        fd = _held.pop(folder)
        try:
            os.unlink(os.path.join(folder, LOCK_NAME))
        except OSError:
            pass
        os.close(fd)


def _fixed_mkdir_and_rename(original: Callable) -> Callable:
    @functools.wraps(original)
    def mkdir_and_rename(path):
        if os.path.exists(path):
            pid = holder(path)
            if pid is not None:
                report(in_use(path, pid))
            release(path)  # an earlier run of this process: finished, archived like any other
        original(path)
        lock(path)

    return marked(mkdir_and_rename, original)


def _expected(func: Callable) -> bool:
    """Whether ``func`` is BasicSR's renaming ``mkdir_and_rename`` (it renames with ``_archived_``)."""
    code = getattr(func, '__code__', None)
    return code is not None and 'rename' in code.co_names and '_archived_' in code.co_consts


def install() -> None:
    """Replace ``mkdir_and_rename`` in ``basicsr.utils.misc`` (used by ``make_exp_dirs``) and where it was
    imported by name (``basicsr.utils``, ``basicsr.train`` and a ``python -m basicsr.train`` main)."""
    import basicsr.utils.misc as misc

    if not is_ours(misc.mkdir_and_rename) and not _expected(misc.mkdir_and_rename):
        return  # another BasicSR: left alone
    replace(misc, 'mkdir_and_rename', _fixed_mkdir_and_rename)
    patch_bound_copies()


def patch_bound_copies() -> None:
    """Point the names bound by ``from basicsr.utils import mkdir_and_rename`` at the fixed function."""
    import basicsr.utils.misc as misc

    fixed = misc.mkdir_and_rename
    if not is_ours(fixed):
        return
    for module in (sys.modules.get('basicsr.utils'), sys.modules.get('basicsr.train'), sys.modules.get('__main__')):
        if module is not None and getattr(module, 'mkdir_and_rename', None) is fixed.__wrapped__:
            module.mkdir_and_rename = fixed
