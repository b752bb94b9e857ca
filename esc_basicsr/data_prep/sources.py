"""HR source images of data preparation: listing, LMDB-safe names, reading as 8-bit BGR, fingerprints.

Reading is :func:`esc_basicsr.utils.image_io.read_bgr8` (EXIF orientation, pixel limit, bit depth);
outputs are written with :func:`esc_basicsr.utils.image_io.write_png` (atomic).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from ..utils.atomic import check_writable as atomic_check_writable
from ..utils.image_io import DEFAULT_MAX_PIXELS, ImageReadError, read_bgr8
from ..utils.image_io import IMAGE_EXTENSIONS as READER_EXTENSIONS

__all__ = ['IMAGE_EXTENSIONS', 'ImageError', 'check_writable', 'list_images', 'read_bgr', 'safe_stem',
           'source_digest']

# HR sources: the formats of the tools' reader except float EXR (training data is 8/16-bit)
IMAGE_EXTENSIONS = tuple(ext for ext in READER_EXTENSIONS if ext != '.exr')


class ImageError(ValueError):
    """An input image cannot be used (unreadable, too small, bad name)."""


def list_images(folders: list[str | Path]) -> list[Path]:
    """Image files directly inside ``folders`` (sorted by name within each folder)."""
    files = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f'input folder {folder} does not exist')
        files += sorted(p for p in folder.iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith('.'))
    return files


def safe_stem(path: Path) -> str:
    """File stem usable as an LMDB key (BasicSR splits keys at the first '.', keys are ASCII)."""
    stem = re.sub(r'[^A-Za-z0-9_+-]', '_', path.stem)
    if not stem.strip('_'):
        raise ImageError(f'{path}: cannot derive a usable name from the file name')
    return stem


def read_bgr(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as upright 8-bit BGR ``(H, W, 3)`` (grey replicated, alpha dropped, 16-bit scaled);
    raise ``ImageError`` naming the file for anything unusable (see :func:`esc_basicsr.utils.image_io.read_bgr8`)."""
    try:
        return read_bgr8(path, max_pixels)
    except ImageReadError as exc:
        raise ImageError(f'{path}: {exc}') from None


def source_digest(path: Path) -> str:
    """SHA-256 of a source file's bytes: outputs made from an older file of the same name are redone."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def check_kinds(folders: list[Path], files: list[Path] = ()) -> None:
    """Refuse (``ValueError``, one line) an output name taken by something of another kind: a file where
    ``prepare`` makes a folder, a folder where it writes a file, a link to nothing (links are followed: a
    sub-image folder may be a link to another disk)."""
    for path, folder in [(p, True) for p in folders] + [(p, False) for p in files]:
        if path.is_symlink() and not path.exists():
            raise ValueError(f'{path} is a symbolic link to nothing: choose another --out or --name, or move it away')
        if path.exists() and path.is_dir() != folder:
            raise ValueError(f'{path} exists and is {"a folder" if path.is_dir() else "a file"}, where prepare makes '
                             f'a {"folder" if folder else "file"}: choose another --out or --name, or move it away')


def check_writable(folder: Path) -> None:
    """Create ``folder`` and check that files can be created in it; raise ``ValueError`` naming it."""
    try:
        atomic_check_writable(folder)
    except OSError as exc:
        raise ValueError(f'--out {folder}: cannot write there ({exc.strerror or exc})') from None
