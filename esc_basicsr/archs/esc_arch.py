"""ESC: Emulating Self-attention with Convolution for Efficient Image Super-Resolution.

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671). Design: a lightweight SR transformer in which one
32x32-window self-attention per block is followed by several ConvAttn modules that share a single
geometric-ensembled 13x13 large kernel across the whole network (plus small dynamic kernels),
with a pixel-shuffle head and a nearest-neighbour image skip.

Constructor arguments use the names of the authors' option files, and parameter/buffer names
match their checkpoints, so released ``params``/``params_ema`` load with ``strict=True``.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.memory_format import to_preferred_format
from ..layers import ESCBlock, geometric_ensemble
from .checkpoint import convert_subpixel_scale


class GeometricEnsemble(nn.Module):
    """Training-time re-parameterisation of the shared large kernel (see
    :func:`esc_basicsr.layers.geometric_ensemble`). Replaced by ``nn.Identity`` when folded."""

    def forward(self, kernel: torch.Tensor) -> torch.Tensor:
        return geometric_ensemble(kernel)


class ESC(nn.Module):
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

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that first converts a checkpoint of another scale
        (:func:`esc_basicsr.archs.checkpoint.convert_subpixel_scale`, logged)."""
        state_dict = convert_subpixel_scale(state_dict, self.upscaling_factor)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, r*H, r*W)."""
        x = to_preferred_format(x)
        feat = self.proj(x)
        skip = feat
        plk_filter = self.plk_func(self.plk_filter)
        for block in self.blocks:
            feat = block(feat, plk_filter)
        feat = self.last(feat) + skip
        r = self.upscaling_factor
        out = self.to_img(feat) + torch.repeat_interleave(x, r * r, dim=1)
        return F.pixel_shuffle(out, r)
