"""Padding helpers that work for every input size.

PyTorch's ``reflect`` padding requires the pad to be smaller than the padded dimension, which
is why the reference ESC/ELAN code fails on inputs smaller than (half) a window. These helpers
reproduce single reflect padding exactly whenever it is valid, and otherwise keep reflecting
(a mirrored, periodic extension) so that any size down to 1x1 is accepted.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _reflect_pad_1d(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Reflect-pad ``x`` by ``pad`` at the end of spatial ``dim`` (2 = height, 3 = width)."""
    while pad > 0:
        size = x.shape[dim]
        if size == 1:  # nothing to mirror: repeat the single row/column
            reps = [1, 1, 1, 1]
            reps[dim] = pad + 1
            return x.repeat(*reps)
        step = min(pad, size - 1)
        x = F.pad(x, (0, step, 0, 0) if dim == 3 else (0, 0, 0, step), mode='reflect')
        pad -= step
    return x


def pad_bottom_right(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-pad a ``(B, C, H, W)`` tensor on the bottom and right, for any size.

    Identical to ``F.pad(x, (0, pad_w, 0, pad_h), mode='reflect')`` whenever that call is valid.
    """
    if pad_h == 0 and pad_w == 0:
        return x
    if pad_h < x.shape[2] and pad_w < x.shape[3]:
        return F.pad(x, (0, pad_w, 0, pad_h), mode='reflect')
    return _reflect_pad_1d(_reflect_pad_1d(x, pad_h, 2), pad_w, 3)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad ``(B, C, H, W)`` on the bottom/right up to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    return pad_bottom_right(x, (-h) % multiple, (-w) % multiple)


def lcm(*values: int) -> int:
    """Least common multiple of window sizes (the padding unit of multi-window attention)."""
    out = 1
    for v in values:
        out = out * v // math.gcd(out, v)
    return out
