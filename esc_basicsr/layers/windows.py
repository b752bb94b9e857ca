"""Self-attention inside non-overlapping windows: the part every window attention shares.

Padding the input to the window grid, projecting q/k/v, splitting them into windows, putting the
attended windows back together and cropping, in strips of window rows during inference. What is
attended with what (a relative position bias, low-rank positional factors, ...) is the caller's
``attend``: :class:`~.window_attention.WindowAttention` and
:class:`~.rib_attention.LowRankWindowAttention` differ only there.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from .export_state import is_exporting
from .padding import pad_to_multiple

# Inference processes the image in strips of window rows whose q/k/v hold at most this many
# elements (16 MB fp32): the whole-image q/k/v and its windowed copy were the forward's memory peak.
STRIP_QKV_ELEMS = 4 * 1024 * 1024

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def attend_in_windows(x: torch.Tensor, window_size: int, num_heads: int, to_qkv: nn.Module,
                      attend: Attend) -> torch.Tensor:
    """Multi-head self-attention of ``x`` inside ``window_size x window_size`` windows, before the
    output projection.

    The input is reflect-padded on the bottom/right to a multiple of the window (any size down to
    1x1), attended and cropped back. With autograd recording or while exporting, every window is
    attended in one call; otherwise in strips of window rows (:data:`STRIP_QKV_ELEMS`), each with its
    own call of ``attend``, written into one output.

    Args:
        x: ``(B, C, H, W)``.
        window_size: window side w.
        num_heads: heads (C is split evenly over them).
        to_qkv: ``(B, C, h, w)`` -> ``(B, 3C, h, w)``, channels ordered (q/k/v, head, head_dim).
        attend: ``(q, k, v)`` -> output, each ``(windows * B, heads, w*w, C / heads)``, tokens
            row-major inside a window.

    Returns:
        ``(B, C, H, W)`` (a view of channels-last storage).
    """
    b, c, h, w = x.shape
    ws = window_size
    x = pad_to_multiple(x, ws)
    hp, wp = x.shape[-2:]
    nh, nw = hp // ws, wp // ws
    if torch.is_grad_enabled() or is_exporting():
        out = _attend_rows(x, ws, num_heads, nw, to_qkv, attend)
    else:
        rows = max(1, STRIP_QKV_ELEMS // (b * ws * wp * 3 * c))
        out = x.new_empty(b, hp, wp, c)  # channels-last storage, filled strip by strip
        for r0 in range(0, nh, rows):
            strip = x[:, :, r0 * ws:(r0 + rows) * ws]
            out[:, r0 * ws:r0 * ws + strip.shape[2]] = _attend_rows(strip, ws, num_heads, nw, to_qkv, attend)
    return out.permute(0, 3, 1, 2)[:, :, :h, :w]


def _attend_rows(x: torch.Tensor, ws: int, heads: int, nw: int, to_qkv: nn.Module, attend: Attend) -> torch.Tensor:
    """Attention of a window-aligned ``(B, C, r*ws, nw*ws)`` strip -> ``(B, r*ws, nw*ws, C)``."""
    b, c, hs, wp = x.shape
    nh, hd = hs // ws, c // heads
    # (B, 3*C, Hs, Wp) -> (3, B*nh*nw, heads, ws*ws, head_dim), going through the channels-last
    # view (free for channels-last features, one copy otherwise)
    qkv = to_qkv(x).permute(0, 2, 3, 1).reshape(b, nh, ws, nw, ws, 3, heads, hd)
    # q, k and v as three tensors of their own (each reshape gathers its windows), not views of
    # one buffer: compiled FlexAttention would guard on the shared base (a graph per size)
    q, k, v = (t.reshape(b * nh * nw, heads, ws * ws, hd).contiguous()
               for t in qkv.permute(5, 0, 1, 3, 6, 2, 4, 7).unbind(0))
    out = attend(q, k, v)
    # (B*nh*nw, heads, ws*ws, head_dim) -> (B, Hs, Wp, C)
    return out.reshape(b, nh, nw, heads, ws, ws, hd).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, hs, wp, c)
