"""Padding helpers that work for every input size.

PyTorch's ``reflect`` padding requires the pad to be smaller than the padded dimension, which
is why the reference ESC/ELAN code fails on inputs smaller than (half) a window. These helpers
reproduce single reflect padding exactly whenever it is valid, and otherwise keep reflecting
(a mirrored, periodic extension) so that any size down to 1x1 is accepted.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .export_state import is_exporting


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
    """Reflect-pad ``(B, C, H, W)`` on the bottom/right up to a multiple of ``multiple``.

    While exporting (:func:`.export_state.is_exporting`) the branch-free
    :func:`reflect_pad_to_multiple` gives the same values in a size-generic graph.
    """
    if is_exporting():
        return reflect_pad_to_multiple(x, multiple)
    h, w = x.shape[-2:]
    return pad_bottom_right(x, (-h) % multiple, (-w) % multiple)


def reflect_index(size: int, padded: int, reps: int) -> torch.Tensor:
    """Indices ``(padded,)`` of a repeated reflection of ``0..size-1`` (period ``2*size-2``).

    Equal to the index pattern of ``F.pad(mode='reflect')`` where that is valid, and of its repeated
    application (:func:`pad_bottom_right`) for larger pads. Built by folding ``arange(padded)`` back
    into range ``reps`` times (arithmetic only, so exporters record a size-generic graph; a
    ``repeat``/``cat`` formulation made dynamo build a wrong graph for a 1-pixel dimension).
    """
    idx = torch.arange(padded)
    last = size - 1
    for _ in range(reps):
        idx = last - (last - idx.abs()).abs()
    return idx.clamp(0, last)


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Branch-free equivalent of :func:`pad_to_multiple` (graphs for any size, e.g. ONNX export).

    ``(B, C, H, W) -> (B, C, ceil(H/m)*m, ceil(W/m)*m)`` by gathering reflected rows and columns.
    """
    h, w = x.shape[-2:]
    rows = reflect_index(h, h + (-h) % multiple, multiple).to(x.device)
    cols = reflect_index(w, w + (-w) % multiple, multiple).to(x.device)
    return x.index_select(2, rows).index_select(3, cols)

