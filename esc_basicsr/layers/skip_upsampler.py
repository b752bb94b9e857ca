"""Features + low-resolution image -> image: the upsampler of the authors' SST code (ESC-RIB).

Three layouts (``upsampler_type``, the authors' names; ``r`` = scale, ``F`` = ``intermediate_dim``):

=======================  ==========================================================================
``pixelshuffle_direct``  ``up_conv`` 3x3 dim -> 3 r^2, plus the image repeated r^2 times, PixelShuffle(r)
                         (ESC's head)
``pixelshuffle``         LeakyReLU(0.1)(``feature_conv`` 3x3 dim -> F), ``up_conv`` 3x3 F -> F r^2,
                         PixelShuffle(r), ``final_conv`` 3x3 F -> 3, plus the image upsampled (nearest)
``nn+conv``              ``f``(features + ``f_img``(image)) with ``f`` = conv3x3 dim -> F, LeakyReLU(0.1),
                         per factor 2 [nearest x2, conv3x3 F -> F, LeakyReLU(0.1)] (r = 3: one x3 step),
                         conv3x3 F -> 3; ``f_img`` = 1x1 3 -> dim, 7x7 dim -> dim, LeakyReLU(0.1), 1x1
=======================  ==========================================================================

One sub-pixel convolution (``up_conv``) does all of the upsampling in the first two, so a checkpoint
of one scale initialises another by resizing it
(:func:`esc_basicsr.archs.checkpoint.convert_subpixel_scale`).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

UPSAMPLER_TYPES = ('pixelshuffle_direct', 'pixelshuffle', 'nn+conv')


class SkipUpsampler(nn.Module):
    """``(B, dim, H, W)`` features and the ``(B, 3, H, W)`` input image -> ``(B, 3, rH, rW)``.

    Args:
        dim: feature channels.
        upscaling_factor: integer scale r >= 1 (``nn+conv``: a power of two or 3).
        upsampler_type: one of :data:`UPSAMPLER_TYPES`.
        intermediate_dim: channels inside ``pixelshuffle`` and ``nn+conv``. Default: 64.
    """

    def __init__(self, dim: int, upscaling_factor: int, upsampler_type: str = 'pixelshuffle_direct',
                 intermediate_dim: int = 64) -> None:
        super().__init__()
        r = upscaling_factor
        if int(r) != r or r < 1:
            raise ValueError(f'upscaling_factor must be a positive integer, got {r!r}')
        r = int(r)
        if upsampler_type not in UPSAMPLER_TYPES:
            raise ValueError(f'upsampler_type must be one of {UPSAMPLER_TYPES}, got {upsampler_type!r}')
        self.upscaling_factor, self.upsampler_type = r, upsampler_type
        nf = intermediate_dim
        if upsampler_type == 'pixelshuffle_direct':
            self.up_conv = nn.Conv2d(dim, 3 * r * r, 3, 1, 1)
        elif upsampler_type == 'pixelshuffle':
            self.feature_conv = nn.Conv2d(dim, nf, 3, 1, 1)
            self.up_conv = nn.Conv2d(nf, nf * r * r, 3, 1, 1)
            self.final_conv = nn.Conv2d(nf, 3, 3, 1, 1)
        else:
            if r & (r - 1) == 0:
                steps = [2] * int(math.log2(r))
            elif r == 3:
                steps = [3]
            else:
                raise ValueError(f'upsampler_type "nn+conv" supports scales 3 and powers of two, not {r}')
            f: list[nn.Module] = [nn.Conv2d(dim, nf, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True)]
            for s in steps:
                f += [nn.Upsample(scale_factor=s, mode='nearest'), nn.Conv2d(nf, nf, 3, 1, 1),
                      nn.LeakyReLU(0.1, inplace=True)]
            f.append(nn.Conv2d(nf, 3, 3, 1, 1))
            self.f = nn.Sequential(*f)
            self.f_img = nn.Sequential(nn.Conv2d(3, dim, 1), nn.Conv2d(dim, dim, 7, 1, 3),
                                       nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(dim, dim, 1))

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """x: ``(B, dim, H, W)``, image: ``(B, 3, H, W)`` -> ``(B, 3, rH, rW)``."""
        r = self.upscaling_factor
        if self.upsampler_type == 'pixelshuffle_direct':
            return F.pixel_shuffle(self.up_conv(x) + torch.repeat_interleave(image, r * r, dim=1), r)
        if self.upsampler_type == 'pixelshuffle':
            x = F.leaky_relu(self.feature_conv(x), 0.1)
            x = self.final_conv(F.pixel_shuffle(self.up_conv(x), r))
            return x + F.interpolate(image, scale_factor=r, mode='nearest')
        return self.f(x + self.f_img(image))

    def extra_repr(self) -> str:
        return f'upscaling_factor={self.upscaling_factor}, upsampler_type={self.upsampler_type!r}'
