"""Tiled forward pass: bounded memory for large images, close to whole-image results.

The image is cut into ``tile x tile`` tiles; each is run with ``tile_pad`` pixels of real image
context on every side (clipped at the borders) and only its centre is kept. Both sizes are
rounded up to a multiple of the model's window grid (:func:`tile_alignment`; 32 for ESC, 16 for
ELAN, 64 for ESCRealM x2, whose trunk runs on the input unshuffled by 2), so every tile sees the
same window grid as the whole image: what differs from a whole-image pass is only what lies beyond
``tile_pad`` (the receptive field of the convolutions and the global pooling of ESC's dynamic
kernels).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from ..archs.table import network_input_multiple


def tile_alignment(model: nn.Module, network_g: Mapping[str, Any] | None = None) -> int:
    """The window grid of ``model``, in input pixels (1 if none).

    For an esc_basicsr architecture described by ``network_g`` (with ``type``): its input multiple
    from the architecture table (``ArchSpec.input_multiple``, input unshuffling included). Otherwise
    (BasicSR's own networks such as SwinIR, or no ``network_g``): the least common multiple of the
    ``window_size`` (ESC's WindowAttention, SwinIR), ``window_sizes`` (ELAN) and ``pad_multiple``
    attributes found on ``model``'s submodules.
    """
    multiple = network_input_multiple(network_g) if network_g is not None else None
    if multiple is not None:
        return multiple
    sizes: list[int] = []
    for module in model.modules():
        for attr in ('window_size', 'window_sizes', 'pad_multiple'):
            value = getattr(module, attr, None)
            if isinstance(value, int) and value > 0:
                sizes.append(value)
            elif isinstance(value, (tuple, list)) and all(isinstance(v, int) and v > 0 for v in value):
                sizes.extend(value)
    return math.lcm(*sizes) if sizes else 1


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def tiled_forward(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, tile: int,
                  tile_pad: int = 32, align: int = 1, out_device: torch.device | str | None = None) -> torch.Tensor:
    """Run ``forward`` over ``x`` tile by tile.

    Args:
        forward: the model (or a callable wrapping it), ``(B, C, h, w) -> (B, C', scale*h, scale*w)``.
        x: ``(B, C, H, W)`` input.
        scale: upscaling factor of ``forward``.
        tile: tile side in input pixels (rounded up to ``align``); ``<= 0`` runs the whole image.
        tile_pad: context around each tile in input pixels (rounded up to ``align``).
        align: window grid of the model (see :func:`tile_alignment`).
        out_device: device of the assembled output (default: ``x``'s). The CPU keeps large
            outputs off a GPU.

    Returns:
        ``(B, C', scale*H, scale*W)`` float tensor on ``out_device``.
    """
    b, _, h, w = x.shape
    out_device = x.device if out_device is None else torch.device(out_device)
    if tile <= 0 or (h <= tile and w <= tile):
        return forward(x).to(out_device)
    tile = round_up(tile, align)
    tile_pad = round_up(tile_pad, align) if tile_pad > 0 else 0
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(y0 - tile_pad, 0), max(x0 - tile_pad, 0)
            yb, xb = min(y1 + tile_pad, h), min(x1 + tile_pad, w)
            result = forward(x[:, :, ya:yb, xa:xb])
            if out is None:
                out = torch.empty(b, result.shape[1], h * scale, w * scale, dtype=result.dtype, device=out_device)
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                result[:, :, (y0 - ya) * scale:(y1 - ya) * scale, (x0 - xa) * scale:(x1 - xa) * scale].to(out_device)
    return out
