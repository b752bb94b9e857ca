"""Atomic, checked ``torch.save`` for the fixes of BasicSR's checkpoint writers (:mod:`.save_network`,
:mod:`.save_training_state`).

The object is serialised in memory, then written under a temporary name in the destination folder,
flushed and renamed over the final name (:func:`esc_basicsr.utils.atomic.write_bytes`): a process killed
half-way leaves the previous file intact, a full disk leaves no partial file, and the ``OSError`` of the
write says why (``torch.save`` onto a full disk raises an ``inline_container.cc`` RuntimeError instead).
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import time
from typing import Any

import torch

from ...utils.atomic import TMP_MARK, write_bytes
from ._command import report

# errors that retrying does not cure (BasicSR retries every error three times, a second apart)
PERMANENT = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
             errno.ENOTDIR, errno.EISDIR}


class CheckpointSaveError(OSError):
    """A model or training state could not be saved (the path and the reason)."""


_cleaned: set[str] = set()


def remove_dead_temporaries(folder: str) -> None:
    """Delete temporaries of checkpoints left in ``folder`` by other (killed) processes, once per process.
    The experiment folder is locked by this run (:mod:`.experiment_folders`), so they are not being written."""
    if folder in _cleaned or not os.path.isdir(folder):
        return
    _cleaned.add(folder)
    mine = f'{TMP_MARK}{os.getpid()}-'
    for name in os.listdir(folder):
        if name.startswith('.') and TMP_MARK in name and mine not in name:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def save_checked(obj: Any, path: str, retries: int = 3, what: str = 'checkpoint') -> None:
    """``torch.save(obj, path)`` atomically; transient errors are retried (as BasicSR does), the last error
    is raised as :class:`CheckpointSaveError` (as a command: one line, exit code 1)."""
    remove_dead_temporaries(os.path.dirname(path))
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    for attempt in range(retries):
        try:
            write_bytes(path, data, make_parents=False)
            return
        except OSError as exc:
            last = exc
            if exc.errno in PERMANENT or attempt == retries - 1:
                break
            from basicsr.utils import get_root_logger

            get_root_logger().warning(f'Save {what} error: {exc}, remaining retry times: {retries - attempt - 1}')
            time.sleep(1)
    error = CheckpointSaveError(f'cannot save {path}: {last.strerror or last}; training stopped (the previous '
                                'checkpoints are complete: make room, then resume with --auto_resume)')
    error.errno = last.errno
    report(error, code=1)
