"""ESC-Real: ESC for real-world x4 super-resolution.

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671). Design: ESC with LayerNorm before every ConvFFN,
an extra image skip branch (1x1 -> 7x7 depthwise -> LeakyReLU -> 1x1) into the features, and the
nearest-neighbour + convolution x4 upsampler of Real-ESRGAN / SwinIR-Real (better suited to GAN
training than pixel shuffle).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..layers.memory_format import to_preferred_format
from ..layers import ESCBlock
from .esc_arch import GeometricEnsemble, SharedKernelTrunk


class ESCReal(SharedKernelTrunk):
    """ESC-Real (x4 only).

    Args:
        dim, pdim, kernel_size, n_blocks, conv_blocks, window_size, num_heads: as in :class:`ESC`
            (the released model: 64, 16, 13, 10, 5, 32, 4).
        upscaling_factor: must be 4 (two nearest x2 + conv stages).
        exp_ratio: ConvFFN expansion of the pairs (released model: 2). Default: 2.
        attn_type: ``auto`` | ``naive`` | ``sdpa`` | ``flex``, case-insensitive. Default: ``auto``.

    Input ``(B, 3, H, W)`` in [0, 1]; output ``(B, 3, 4H, 4W)``.
    """

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, upscaling_factor: int = 4, exp_ratio: float = 2, attn_type: str = 'auto') -> None:
        super().__init__()
        if upscaling_factor != 4:
            raise ValueError(f'ESCReal supports upscaling_factor=4 only, got {upscaling_factor}')
        self.upscaling_factor = upscaling_factor
        self.plk_func: nn.Module = GeometricEnsemble()
        self.plk_filter = nn.Parameter(torch.empty(pdim, pdim, kernel_size, kernel_size))
        nn.init.orthogonal_(self.plk_filter)
        self.proj = nn.Conv2d(3, dim, 3, 1, 1)
        self.blocks = nn.ModuleList([
            ESCBlock(dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio, attn_type, use_ln=True)
            for _ in range(n_blocks)
        ])
        self.last = nn.Conv2d(dim, dim, 3, 1, 1)
        self.to_img = nn.Sequential(
            nn.Upsample(scale_factor=2, mode='nearest'),
            nn.Conv2d(dim, dim, 3, 1, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2, mode='nearest'),
            nn.Conv2d(dim, dim, 3, 1, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim, 3, 3, 1, 1),
        )
        self.skip = nn.Sequential(
            nn.Conv2d(3, dim * 2, 1),
            nn.Conv2d(dim * 2, dim * 2, 7, 1, 3, groups=dim * 2, padding_mode='reflect'),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim * 2, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, 4H, 4W)."""
        x = to_preferred_format(x)
        feat = self.trunk(x) + self.skip(x)
        return self.to_img(feat)
