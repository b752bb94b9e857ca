"""Non-overlapping window self-attention with a learned relative position bias (ESC's one
self-attention per block, 32x32 windows by default)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .attention_backends import attention_dtype, normalize_attn_type, relative_position_bias, resolve_backend, \
    windowed_attention
from .windows import attend_in_windows


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``window_size x window_size`` windows.

    The input is reflect-padded on the bottom/right to a multiple of the window (any size works,
    down to 1x1), attended, and cropped back (:func:`~.windows.attend_in_windows`).

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
        ws = self.window_size
        backend = self.backend(x.device, attention_dtype(x))
        # the (heads, N, N) bias is gathered once for all strips of the image (16 MB for a 32x32 window)
        bias = None if backend == 'flex' else relative_position_bias(self.relative_position_bias, ws)
        out = attend_in_windows(x, ws, self.num_heads, self.to_qkv, lambda q, k, v: windowed_attention(
            q, k, v, self.relative_position_bias, ws, backend, bias))
        return self.to_out(out)

    def backend(self, device: torch.device, dtype: torch.dtype | None = None, requires_grad: bool | None = None) -> str:
        """The backend this layer's attention runs on ``device`` with q/k/v of ``dtype``
        (:func:`~esc_basicsr.layers.attention_backends.resolve_backend` given its head dim)."""
        return resolve_backend(self.attn_type, device, requires_grad, head_dim=self.dim // self.num_heads, dtype=dtype)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}, ' \
               f'attn_type={self.attn_type}'
