"""Atomic file output: every file a tool writes appears whole under its final name, or not at all.

A file is written under a hidden temporary name in the destination folder (same file system, so
``os.replace`` is an atomic rename), flushed to disk, and renamed over the final name. A process
killed half-way leaves only the temporary (``.<name>.tmp-<pid>-<token><ext>``), which
:func:`remove_stale_temporaries` or the next run cleans up; the final name keeps its previous
content until the new one is complete.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

TMP_MARK = '.tmp-'


def temporary_name(path: str | Path) -> Path:
    """Hidden temporary path next to ``path`` that keeps its extension (tools such as
    ``torch.onnx.export`` and ``matplotlib.savefig`` pick the format from it)."""
    path = Path(path)
    return path.with_name(f'.{path.stem}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{path.suffix}')


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. a folder on Windows: durability is best effort, atomicity is not
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``, on error deleted.

    Args:
        path: final file name.
        make_parents: create the destination folder if it is missing.

    Raises:
        IsADirectoryError: ``path`` is an existing folder.
        OSError: the folder cannot be created or written (read-only, a file in the way, ...).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f'{path} is a folder, expected a file name')
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f'nothing was written to {tmp} for {path}')
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes(path: str | Path, data: bytes, make_parents: bool = True) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path, make_parents) as tmp, open(tmp, 'wb') as f:
        f.write(data)


def write_text(path: str | Path, text: str, make_parents: bool = True) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode('utf-8'), make_parents)


def check_writable(folder: str | Path) -> None:
    """Create ``folder`` if needed and check that a file can be created in it (``os.access`` is not
    enough: it ignores read-only mounts and says yes to root), with a unique temporary name that is
    removed again (a user's own ``.write-test`` is left alone).

    Raises:
        OSError: a file in the way, no permission, a read-only file system.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f'{folder} exists and is not a folder')
    folder.mkdir(parents=True, exist_ok=True)
    probe = temporary_name(folder / '.write-test')  # a name of its own: a user's file is never touched
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(probe)


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete temporary files left in ``folder`` by an interrupted run (of any process)."""
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith('.') and TMP_MARK in p.name and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
