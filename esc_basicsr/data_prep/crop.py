"""Geometry of BasicSR's sub-image recipe: mod-crops and sub-image corners."""
from __future__ import annotations

import numpy as np


def mod_crop(img: np.ndarray, mod: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``mod``."""
    h, w = img.shape[:2]
    return img[:h - h % mod, :w - w % mod]


def crop_starts(size: int, crop_size: int, step: int, thresh_size: int) -> list[int]:
    """Start offsets along one axis, as in BasicSR's ``scripts/data_preparation/extract_subimages.py``:
    ``range(0, size - crop_size + 1, step)`` plus a last crop flush with the border when more than
    ``thresh_size`` pixels would be left over. Requires ``size >= crop_size``."""
    starts = list(range(0, size - crop_size + 1, step))
    if size - (starts[-1] + crop_size) > thresh_size:
        starts.append(size - crop_size)
    return starts


def subimage_boxes(height: int, width: int, crop_size: int, step: int, thresh_size: int) -> list[tuple[int, int]]:
    """Top-left corners of the sub-images, in BasicSR's order (rows outer, columns inner);
    sub-image ``i`` (0-based) is named ``<stem>_s{i+1:03d}``."""
    return [(y, x) for y in crop_starts(height, crop_size, step, thresh_size)
            for x in crop_starts(width, crop_size, step, thresh_size)]


def fitting_crop(side: int, multiple: int) -> tuple[int, int] | None:
    """``(crop_size, step)`` that would use an image whose shorter (mod-cropped) side is ``side``: the
    largest multiple of ``multiple`` (every scale must divide both) not above ``side``, and the
    recipe's step of half the crop (480/240) rounded down to a multiple. ``None`` if ``side < multiple``."""
    crop = side // multiple * multiple
    if crop == 0:
        return None
    return crop, max(multiple, crop // 2 // multiple * multiple)
