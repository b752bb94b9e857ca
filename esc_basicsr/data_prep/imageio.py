"""Image reading/writing for data preparation: validated reads, atomic PNG writes."""
from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PNG_END = b'IEND\xaeB`\x82'
TMP_MARK = '.tmp-'


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


def read_bgr(path: Path) -> np.ndarray:
    """Read an image as 8-bit BGR ``(H, W, 3)`` (grey is replicated, alpha dropped); raise ``ImageError``."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ImageError(f'{path}: unreadable image (OpenCV cannot decode it)')
    return img


def encode_png(img: np.ndarray, compress_level: int = 3) -> bytes:
    ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError('PNG encoding failed')
    return buf.tobytes()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    tmp = path.with_name(f'.{path.name}{TMP_MARK}{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_png(path: Path, img: np.ndarray, compress_level: int = 3) -> None:
    """Atomically write ``img`` as a PNG."""
    write_atomic(path, encode_png(img, compress_level))


def png_complete(path: Path) -> bool:
    """Cheap check that ``path`` is a whole PNG file (signature and final IEND chunk)."""
    try:
        size = path.stat().st_size
        if size < len(PNG_SIGNATURE) + 12:
            return False
        with open(path, 'rb') as f:
            head = f.read(8)
            f.seek(-8, os.SEEK_END)
            tail = f.read(8)
    except OSError:
        return False
    return head == PNG_SIGNATURE and tail == PNG_END


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files left by an interrupted run."""
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith('.') and TMP_MARK in p.name:
                p.unlink(missing_ok=True)
