"""ESCRealM: the authors' multi-scale real-world ESC (x1, x2, x3, x4 and other powers of two).

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671); the variant is the authors' answer to their issue #2
(also trained by traiNNer-redux users). Design: ESC-Real's trunk and image skip branch with a
choice of five upsamplers (MoSR v2's unified upsampler, :class:`~esc_basicsr.layers.UniUpsample`)
and, for scales 1 and 2, a pixel-unshuffled input (``unshuffle_mod``): the image is folded by
f = 4 / scale into channels, the trunk runs at a quarter (x1) or half (x2) of the resolution and
the network upsamples by 4, which makes the low scales as cheap as x4.

Parameter and buffer names match the authors' checkpoints, ``to_img.MetaUpsample`` included, so
released ``params``/``params_ema`` load with ``strict=True``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import ESCBlock
from ..layers.memory_format import to_preferred_format
from ..layers.padding import pad_to_multiple
from ..layers.upsamplers import UPSAMPLERS, UniUpsample
from .esc_arch import GeometricEnsemble, SharedKernelTrunk
from .esc_real_arch import image_skip_branch


class ESCRealM(SharedKernelTrunk):
    """ESCRealM: ESC-Real at scales 1-4 with a selectable upsampler.

    Args:
        dim, pdim, kernel_size, n_blocks, conv_blocks, window_size, num_heads: as in :class:`ESC`.
        upscaling_factor: output scale r: 1, 2, 3, 4 (or a higher power of two). Default: 4.
        exp_ratio: ConvFFN expansion of the pairs. Default: 2.
        attn_type: ``auto`` | ``naive`` | ``sdpa`` | ``flex``, case-insensitive. Default: ``auto``.
        mid_dim: channels inside the ``pixelshuffle`` and ``dysample`` upsamplers. Default: 48.
        upsampler: ``conv`` | ``pixelshuffledirect`` | ``pixelshuffle`` | ``nearest+conv`` | ``dysample``
            (``pixelshuffle`` and ``nearest+conv``: r of 1, 3 or a power of two; ``conv``: r = 1,
            a same-size network). Default: ``nearest+conv``.
        unshuffle_mod: for r < 3, pixel-unshuffle the input by f = 4 / r (``proj`` and ``skip``
            start with ``PixelUnshuffle(f)``; the input is reflect-padded on the bottom/right to a
            multiple of f) and upsample by 4. No effect at r >= 3 or with ``conv`` (which cannot
            upsample). Default: True.

    ``features = last(blocks(proj(x))) + proj(x) + skip(x)``, ``out = to_img(features)`` cropped
    to ``(rH, rW)``. Input ``(B, 3, H, W)`` in [0, 1], any H, W >= 1; output ``(B, 3, rH, rW)``.
    """

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, upscaling_factor: int = 4, exp_ratio: float = 2, attn_type: str = 'auto',
                 mid_dim: int = 48, upsampler: str = 'nearest+conv', unshuffle_mod: bool = True) -> None:
        super().__init__()
        if int(upscaling_factor) != upscaling_factor or upscaling_factor < 1:
            raise ValueError(f'ESCRealM: upscaling_factor must be a positive integer, got {upscaling_factor}')
        if upsampler not in UPSAMPLERS:
            raise ValueError(f'ESCRealM: upsampler must be one of {UPSAMPLERS}, got {upsampler!r}')
        self.upscaling_factor = int(upscaling_factor)
        self.unshuffle_mod = unshuffle_mod
        # the input folding factor f and the scale of the upsampler
        # (``conv`` cannot upsample, so it never unshuffles: a x1 ``conv`` network runs at full resolution)
        unshuffles = unshuffle_mod and self.upscaling_factor < 3 and upsampler != 'conv'
        self.unshuffle = 4 // self.upscaling_factor if unshuffles else 1
        upsampler_scale = 4 if self.unshuffle > 1 else self.upscaling_factor

        self.plk_func: nn.Module = GeometricEnsemble()
        self.plk_filter = nn.Parameter(torch.empty(pdim, pdim, kernel_size, kernel_size))
        nn.init.orthogonal_(self.plk_filter)
        f = self.unshuffle
        self.proj: nn.Module = nn.Sequential(nn.PixelUnshuffle(f), nn.Conv2d(3 * f * f, dim, 3, 1, 1)) if f > 1 \
            else nn.Conv2d(3, dim, 3, 1, 1)
        self.skip = image_skip_branch(dim, 3, f)
        self.blocks = nn.ModuleList([
            ESCBlock(dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio, attn_type, use_ln=True)
            for _ in range(n_blocks)
        ])
        self.last = nn.Conv2d(dim, dim, 3, 1, 1)
        try:
            self.to_img = UniUpsample(upsampler, upsampler_scale, dim, 3, mid_dim, 4)
        except ValueError as exc:
            raise ValueError(f'ESCRealM(upscaling_factor={self.upscaling_factor}, upsampler={upsampler!r}): '
                             f'{exc}') from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, rH, rW)."""
        h, w = x.shape[-2:]
        x = to_preferred_format(x)
        if self.unshuffle > 1:
            x = pad_to_multiple(x, self.unshuffle)
        feat = self.trunk(x) + self.skip(x)
        out = self.to_img(feat)
        if self.unshuffle > 1:
            r = self.upscaling_factor
            out = out[:, :, :h * r, :w * r]
        return out

    def extra_repr(self) -> str:
        return f'upscaling_factor={self.upscaling_factor}, unshuffle={self.unshuffle}'
