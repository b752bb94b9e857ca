"""MATLAB-compatible bicubic resizing (``imresize(img, ..., 'bicubic')``, antialiased), the one used
for every LR image and every bicubic baseline.

* :func:`bicubic_resize`: by a factor, with BasicSR's port (``basicsr.utils.matlab_functions``), as
  the DIV2K/benchmark LR images are made;
* :func:`imresize_to` / :func:`bicubic_resize_to`: to an exact output size (any, also non-integer,
  scale). MATLAB's ``imresize(img, [h w], 'bicubic')`` uses, per axis, the scale ``out / in`` with its
  antialiased cubic kernel (width ``4 / scale`` when shrinking) and symmetric border padding; for an
  integer factor this is exactly what :func:`bicubic_resize` computes, and non-integer factors land
  on whole pixels (arbitrary-scale data). Each axis is one dense ``(out, in)`` matrix, applied as two
  matrix products.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = -0.5 (MATLAB's)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int) -> np.ndarray:
    """``(out_len, in_len)`` float64 matrix of MATLAB's antialiased bicubic resize along one axis."""
    if in_len < 1 or out_len < 1:
        raise ValueError(f'lengths must be >= 1, got {in_len} -> {out_len}')
    scale = out_len / in_len
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)  # 1-based input position
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None]
    dist = u[:, None] - idx
    weights = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    weights /= weights.sum(1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])  # symmetric padding, edge repeated
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), idx.shape[1]), cols.ravel()), weights.ravel())
    return matrix


def imresize_to(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MATLAB ``imresize(img, size, 'bicubic')`` of a float ``(H, W[, C])`` image -> float32 ``(h, w[, C])``
    (not rounded or clipped)."""
    h, w = size
    rows = resize_matrix(img.shape[0], h)
    cols = resize_matrix(img.shape[1], w)
    out = np.tensordot(rows, img.astype(np.float64), axes=(1, 0))  # (h, W, C)
    out = np.tensordot(cols, out, axes=(1, 1)).swapaxes(0, 1)  # (h, w, C)
    return np.ascontiguousarray(out, dtype=np.float32)


def bicubic_resize_to(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`imresize_to` of a uint8 image, rounded and clipped to uint8 like MATLAB."""
    out = imresize_to(img.astype(np.float32) / 255., size)
    return np.clip(np.round(out * 255.), 0, 255).astype(np.uint8)


def bicubic_resize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of a uint8 ``(H, W, C)`` image, rounded and clipped
    to uint8 like MATLAB (``basicsr.utils.matlab_functions.imresize``, antialiasing on)."""
    from basicsr.utils.matlab_functions import imresize

    out = imresize(img.astype(np.float32) / 255., scale)
    return np.clip(np.round(out * 255.), 0, 255).astype(np.uint8)
