"""ESC-FP: the fewer-parameter ESC variant with a decomposed large kernel.

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671). Design: ESC in which the shared 16x16x13x13 large
kernel is decomposed into a 1x1 channel mix and a per-channel 13x13 spatial kernel (both shared
across the network, the dynamic 3x3 kernel added to the spatial one), with LayerNorm before every
ConvFFN, a final LayerNorm, and a bicubic image skip. (Not built by
:class:`~.esc_trunk.SharedKernelTrunk`: two shared kernel parameters, both passed to every block.)
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import ESCBlock, LayerNorm2d
from ..layers.memory_format import to_preferred_format
from .checkpoint import ConvertsSubpixelScale, subpixel_scale
from .esc_trunk import is_esc_trunk, trunk_arguments
from .state_dict_layout import StateDict, has


class ESCFP(ConvertsSubpixelScale, nn.Module):
    """ESC-FP.

    Args:
        dim: feature channels (48).
        pdim: channels handled by the decomposed large kernel (16).
        kernel_size: spatial size of the large kernel (13).
        n_blocks: ESC blocks (5).
        conv_blocks: ConvAttn/ConvFFN pairs per block (5).
        window_size: self-attention window (32).
        num_heads: attention heads (3).
        upscaling_factor: output scale r.
        exp_ratio: ConvFFN expansion of the pairs (1.25 in the paper). Default: 2 (as the authors').
        attn_type: ``auto`` | ``naive`` | ``sdpa`` | ``flex``, case-insensitive. Default: ``auto``.

    Input ``(B, 3, H, W)`` in [0, 1]; output ``(B, 3, r*H, r*W)``.
    """

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, upscaling_factor: int, exp_ratio: float = 2, attn_type: str = 'auto') -> None:
        super().__init__()
        self.upscaling_factor = upscaling_factor
        self.lk_channel = nn.Parameter(torch.randn(pdim, pdim, 1, 1))
        self.lk_spatial = nn.Parameter(torch.empty(pdim, 1, kernel_size, kernel_size))
        nn.init.orthogonal_(self.lk_spatial)
        self.proj = nn.Conv2d(3, dim, 3, 1, 1)
        self.blocks = nn.ModuleList([
            ESCBlock(dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio, attn_type,
                     use_ln=True, proj_ratio=1.5, decomposed=True) for _ in range(n_blocks)
        ])
        self.ln_last = LayerNorm2d(dim)
        self.last = nn.Conv2d(dim, dim, 3, 1, 1)
        self.to_img = nn.Conv2d(dim, 3 * upscaling_factor**2, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, r*H, r*W)."""
        x = to_preferred_format(x)
        feat = self.proj(x)
        skip = feat
        for block in self.blocks:
            feat = block(feat, self.lk_channel, self.lk_spatial)
        feat = self.last(self.ln_last(feat)) + skip
        r = self.upscaling_factor
        return F.pixel_shuffle(self.to_img(feat), r) + F.interpolate(x, scale_factor=r, mode='bicubic')


def detect_esc_fp(sd: StateDict) -> dict[str, Any] | None:
    """ESC-FP: decomposed large kernel (``lk_channel`` + ``lk_spatial``), final ``ln_last``."""
    if not (is_esc_trunk(sd) and has(sd, 'lk_channel', 'lk_spatial', 'ln_last.weight', 'to_img.weight')):
        return None
    kwargs = trunk_arguments(sd)
    kwargs['upscaling_factor'] = subpixel_scale(sd['to_img.weight'].shape[0])
    return kwargs
