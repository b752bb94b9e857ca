"""Input discovery and image layouts for inference.

Images are read with OpenCV (``IMREAD_UNCHANGED``, so 16-bit and alpha survive), converted BGR->RGB
and scaled to [0, 1] by the maximum of their dtype. Layouts:

* ``rgb``: ``(H, W, 3)``;  ``gray``: ``(H, W)`` (replicated to 3 channels for the model, the
  output is the mean of the 3 output channels);  ``rgba``: ``(H, W, 4)`` (the colour goes
  through the model, the alpha is upscaled separately).
* dtypes ``uint8`` and ``uint16`` are written back in the same dtype; float images (EXR/TIFF)
  are taken as [0, 1] and written as float32.

Paths with non-ASCII characters work (``np.fromfile`` + ``cv2.imdecode``).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.exr')


@dataclass
class Image:
    """An image split into what the model sees and what it does not.

    Attributes:
        rgb: ``(H, W, 3)`` float32 in [0, 1], RGB order (gray replicated to 3 channels).
        alpha: ``(H, W)`` float32 in [0, 1], or ``None``.
        layout: ``'rgb'``, ``'gray'`` or ``'rgba'``.
        dtype: numpy dtype of the file's pixels (``uint8``, ``uint16``, ``float32``).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    layout: str
    dtype: np.dtype


class ImageReadError(RuntimeError):
    """A file that is not a readable image (missing, corrupt, unsupported)."""


def dtype_max(dtype: np.dtype) -> float:
    """Value of white: 255 for uint8, 65535 for uint16, 1.0 for float images."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def read_image(path: str | Path) -> Image:
    """Read ``path`` into an :class:`Image`; raises :class:`ImageReadError` if it cannot be decoded."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f'cannot open: {exc.strerror or exc}') from exc
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ImageReadError('not a readable image (corrupt, empty or unsupported format)')
    dtype = img.dtype
    if dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageReadError(f'unsupported pixel type {dtype}')
    img = img.astype(np.float32) / dtype_max(dtype)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    alpha = None
    if img.ndim == 2:
        layout, rgb = 'gray', np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 3:
        layout, rgb = 'rgb', img[:, :, ::-1]
    elif img.shape[2] == 4:
        layout, rgb, alpha = 'rgba', img[:, :, 2::-1], np.ascontiguousarray(img[:, :, 3])
    else:
        raise ImageReadError(f'unsupported channel count {img.shape[2]}')
    return Image(np.ascontiguousarray(rgb), alpha, layout, dtype)


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling of an ``(H, W)`` alpha channel in [0, 1] to ``(scale*H, scale*W)``."""
    h, w = alpha.shape
    return np.clip(cv2.resize(alpha, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC), 0, 1)


def compose(rgb: np.ndarray, alpha: np.ndarray | None, layout: str, dtype: np.dtype) -> np.ndarray:
    """Pixels to write for an output ``rgb`` ``(H, W, 3)`` in [0, 1] in the input's layout (BGR order)."""
    if layout == 'gray':
        out = rgb.mean(axis=2)
    else:
        out = rgb[:, :, ::-1]
        if layout == 'rgba':
            out = np.concatenate([out, alpha[:, :, None]], axis=2)
    out = np.clip(out, 0, 1)
    if np.issubdtype(dtype, np.integer):
        return np.rint(out * dtype_max(dtype)).astype(dtype)
    return out.astype(np.float32)


def write_image(path: str | Path, pixels: np.ndarray) -> None:
    """Write ``pixels`` (OpenCV layout) to ``path``, creating its folder; format from the extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or '.png', pixels)
    if not ok:
        raise OSError(f'OpenCV could not encode {path.suffix} with {pixels.dtype} pixels')
    buf.tofile(str(path))


def _glob_base(pattern: str) -> Path:
    """Folder part of a glob before its first wildcard (the root that output folders mirror)."""
    parts = Path(pattern).parts
    base = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path('.')


def list_inputs(spec: str, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[tuple[Path, Path]]:
    """Expand ``spec`` (a file, a folder searched recursively, or a glob) into ``(path, relative)``.

    ``relative`` is the name to use under the output folder: the file name for a file, the path
    relative to the folder (or the glob's fixed prefix), so sub-folders are mirrored. Files named
    explicitly or matched by a glob are kept whatever their extension (so that an unreadable one
    is reported); folders are searched for ``extensions`` only. Sorted by relative name.
    """
    path = Path(spec)
    if path.is_file():
        return [(path, Path(path.name))]
    if path.is_dir():
        files = [p for p in path.rglob('*') if p.is_file() and p.suffix.lower() in extensions]
        return sorted(((p, p.relative_to(path)) for p in files), key=lambda t: str(t[1]))
    if glob.has_magic(spec):
        base = _glob_base(spec)
        files = [Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
        return sorted(((p, p.relative_to(base)) for p in files), key=lambda t: str(t[1]))
    raise FileNotFoundError(f'input {spec!r} is neither a file, a folder nor a glob that matches files')


def output_path(output_dir: str | Path, relative: Path, suffix: str = '', ext: str | None = None) -> Path:
    """``output_dir / relative`` with ``suffix`` added to the stem (``img.png`` -> ``img_x2.png`` for
    ``suffix='_x2'``) and the extension replaced by ``ext`` if given."""
    ext = relative.suffix if ext is None else ('.' + ext.lstrip('.'))
    return Path(output_dir) / relative.parent / f'{relative.stem}{suffix}{ext}'
