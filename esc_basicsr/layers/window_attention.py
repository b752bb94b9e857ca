"""Non-overlapping window self-attention with a learned relative position bias (ESC's one
self-attention per block, 32x32 windows by default)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .attention_backends import attention_dtype, normalize_attn_type, relative_position_bias, resolve_backend, \
    windowed_attention
from .export_state import is_exporting
from .padding import pad_to_multiple


# Inference processes the image in strips of window rows whose q/k/v hold at most this many
# elements (16 MB fp32): the whole-image q/k/v and its windowed copy were the forward's memory peak.
_STRIP_QKV_ELEMS = 4 * 1024 * 1024


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``window_size x window_size`` windows.

    The input is reflect-padded on the bottom/right to a multiple of the window (any size works,
    down to 1x1), attended, and cropped back.

    Args:
        dim: channels C (split evenly over heads).
        window_size: window side w.
        num_heads: attention heads.
        attn_type: ``auto`` | ``naive`` | ``sdpa`` | ``flex`` (see
            :mod:`esc_basicsr.layers.attention_backends`).
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, attn_type: str = 'auto') -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim={dim} must be divisible by num_heads={num_heads}')
        self.dim = dim
        self.window_size = int(window_size)
        self.num_heads = num_heads
        self.attn_type = normalize_attn_type(attn_type)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.to_out = nn.Conv2d(dim, dim, 1)
        self.relative_position_bias = nn.Parameter(
            torch.randn(num_heads, (2 * self.window_size - 1) ** 2) * 0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        ws = self.window_size
        x = pad_to_multiple(x, ws)
        hp, wp = x.shape[-2:]
        nh, nw = hp // ws, wp // ws
        backend = self.backend(x.device, attention_dtype(x))
        if torch.is_grad_enabled() or is_exporting():
            out = self._attend_rows(x, nw, backend)
        else:
            rows = max(1, _STRIP_QKV_ELEMS // (b * ws * wp * 3 * c))
            out = x.new_empty(b, hp, wp, c)  # channels-last storage, filled strip by strip
            # the (heads, N, N) bias is gathered once for all strips (16 MB for a 32x32 window)
            bias = None if backend == 'flex' else relative_position_bias(self.relative_position_bias, ws)
            for r0 in range(0, nh, rows):
                strip = x[:, :, r0 * ws:(r0 + rows) * ws]
                out[:, r0 * ws:r0 * ws + strip.shape[2]] = self._attend_rows(strip, nw, backend, bias)
        return self.to_out(out.permute(0, 3, 1, 2)[:, :, :h, :w])

    def backend(self, device: torch.device, dtype: torch.dtype | None = None, requires_grad: bool | None = None) -> str:
        """The backend this layer's attention runs on ``device`` with q/k/v of ``dtype``
        (:func:`~esc_basicsr.layers.attention_backends.resolve_backend` given its head dim)."""
        return resolve_backend(self.attn_type, device, requires_grad, head_dim=self.dim // self.num_heads, dtype=dtype)

    def _attend_rows(self, x: torch.Tensor, nw: int, backend: str, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Attention of a window-aligned ``(B, C, r*ws, nw*ws)`` strip -> ``(B, r*ws, nw*ws, C)``."""
        b, c, hs, wp = x.shape
        ws, heads = self.window_size, self.num_heads
        nh, hd = hs // ws, c // heads
        # (B, 3*C, Hs, Wp) -> (3, B*nh*nw, heads, ws*ws, head_dim), going through the channels-last
        # view (free for channels-last features, one copy otherwise)
        qkv = self.to_qkv(x).permute(0, 2, 3, 1).reshape(b, nh, ws, nw, ws, 3, heads, hd)
        # q, k and v as three tensors of their own (each reshape gathers its windows), not views of
        # one buffer: compiled FlexAttention would guard on the shared base (a graph per size)
        q, k, v = (t.reshape(b * nh * nw, heads, ws * ws, hd).contiguous()
                   for t in qkv.permute(5, 0, 1, 3, 6, 2, 4, 7).unbind(0))
        out = windowed_attention(q, k, v, self.relative_position_bias, ws, backend, bias)
        # (B*nh*nw, heads, ws*ws, head_dim) -> (B, Hs, Wp, C)
        return out.view(b, nh, nw, heads, ws, ws, hd).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, hs, wp, c)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}, ' \
               f'attn_type={self.attn_type}'
