"""ESC: Emulating Self-attention with Convolution for Efficient Image Super-Resolution.

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671). Design: a lightweight SR transformer in which one
32x32-window self-attention per block is followed by several ConvAttn modules that share a single
geometric-ensembled 13x13 large kernel across the whole network (plus small dynamic kernels),
with a pixel-shuffle head and a nearest-neighbour image skip.

Constructor arguments use the names of the authors' option files, and parameter/buffer names
match their checkpoints, so released ``params``/``params_ema`` load with ``strict=True``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.memory_format import to_preferred_format
from ..layers import ESCBlock, geometric_ensemble
from .checkpoint import ConvertsSubpixelScale


class GeometricEnsemble(nn.Module):
    """Training-time re-parameterisation of the shared large kernel (see
    :func:`esc_basicsr.layers.geometric_ensemble`). Replaced by ``nn.Identity`` when folded."""

    def forward(self, kernel: torch.Tensor) -> torch.Tensor:
        return geometric_ensemble(kernel)


class SharedKernelTrunk(nn.Module):
    """Feature trunk of ESC and ESC-Real: ``proj`` -> blocks sharing one ensembled large kernel ->
    ``last`` + long skip. Subclasses define ``proj``, ``plk_func``, ``plk_filter``, ``blocks``, ``last``."""

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, dim, H, W)."""
        feat = self.proj(x)
        plk_filter = self.plk_func(self.plk_filter)  # once per forward, shared by every ConvAttn
        out = feat
        for block in self.blocks:
            out = block(out, plk_filter)
        return self.last(out) + feat


class ESC(ConvertsSubpixelScale, SharedKernelTrunk):
    """ESC (also ESC-light and ESC-XL, which are configurations of it).

    Args:
        dim: feature channels (ESC 64, XL 192).
        pdim: channels handled by the shared large kernel (ESC 16, XL 48).
        kernel_size: shared large-kernel size (13).
        n_blocks: ESC blocks (ESC 5, light 3, XL 8).
        conv_blocks: ConvAttn/ConvFFN pairs per block (5).
        window_size: self-attention window (32; XL 48).
        num_heads: attention heads (4; XL 12).
        upscaling_factor: output scale r.
        exp_ratio: ConvFFN expansion of the pairs (1.25 in the paper). Default: 2 (as the authors').
        attn_type: ``auto`` | ``naive`` | ``sdpa`` | ``flex``, case-insensitive. Default: ``auto``.
        use_ln: LayerNorm before each ConvFFN of the pairs (ESC-XL). Default: False.

    Input ``(B, 3, H, W)`` in [0, 1]; output ``(B, 3, r*H, r*W)``. Any H, W >= 1.
    """

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, upscaling_factor: int, exp_ratio: float = 2, attn_type: str = 'auto',
                 use_ln: bool = False) -> None:
        super().__init__()
        self.upscaling_factor = upscaling_factor
        self.plk_func: nn.Module = GeometricEnsemble()
        self.plk_filter = nn.Parameter(torch.empty(pdim, pdim, kernel_size, kernel_size))
        nn.init.orthogonal_(self.plk_filter)  # the authors found this important for early training
        self.proj = nn.Conv2d(3, dim, 3, 1, 1)
        self.blocks = nn.ModuleList([
            ESCBlock(dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio, attn_type, use_ln)
            for _ in range(n_blocks)
        ])
        self.last = nn.Conv2d(dim, dim, 3, 1, 1)
        self.to_img = nn.Conv2d(dim, 3 * upscaling_factor**2, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, r*H, r*W)."""
        x = to_preferred_format(x)
        feat = self.trunk(x)
        r = self.upscaling_factor
        out = self.to_img(feat) + torch.repeat_interleave(x, r * r, dim=1)
        return F.pixel_shuffle(out, r)
