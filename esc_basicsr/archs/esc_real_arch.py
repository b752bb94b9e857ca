"""ESC-Real: ESC for real-world x4 super-resolution.

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671). Design: ESC with LayerNorm before every ConvFFN,
an extra image skip branch (1x1 -> 7x7 depthwise -> LeakyReLU -> 1x1) into the features, and the
nearest-neighbour + convolution x4 upsampler of Real-ESRGAN / SwinIR-Real (better suited to GAN
training than pixel shuffle), or, with ``use_dysample``, a DySample upsampler.

Parameter names match the released ESC-Real x4 checkpoint (``to_img.1/4/6/8``) and the authors'
DySample variant (``to_img.offset/scope/end_conv/init_pos``), which load with ``strict=True``.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import ESCBlock
from ..layers.dysample import DySample
from ..layers.export_state import is_exporting
from ..layers.memory_format import to_preferred_format
from .esc_trunk import SharedKernelTrunk, is_esc_trunk, trunk_arguments
from .state_dict_layout import StateDict, has


def _mirror_index(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices ``(size + 2 * pad,)`` of a both-sided repeated reflection of ``0..size-1``.

    The mirrored periodic extension (period ``2 * size - 2``; all zeros for ``size == 1``): what
    ``F.pad(mode='reflect')`` gives where it is valid (``pad < size``), and what reflecting again
    gives beyond. Element-wise reflections about 0 and ``size - 1`` (``pad + 1`` rounds reach any
    index within ``pad`` of the edges), without branching on ``size``: it traces and exports with
    dynamic sizes.
    """
    idx = torch.arange(-pad, size + pad, device=device)
    last = size - 1
    for _ in range(pad + 1):
        idx = last - (last - idx.abs()).abs()
    return idx.clamp(0, last)  # size 1: every index is 0


def reflect_pad_any_size(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad ``(B, C, H, W)`` by ``pad`` on all four sides, for any H, W >= 1.

    Identical to ``F.pad(x, (pad,) * 4, mode='reflect')`` where that is valid (``pad < H, W``).
    """
    h, w = x.shape[-2:]
    if not is_exporting() and pad < h and pad < w:
        return F.pad(x, (pad,) * 4, mode='reflect')
    return x.index_select(2, _mirror_index(h, pad, x.device)).index_select(3, _mirror_index(w, pad, x.device))


class ReflectConv2d(nn.Conv2d):
    """``nn.Conv2d(..., padding_mode='reflect')`` that accepts inputs smaller than its padding.

    PyTorch's reflect padding requires ``padding < size``; the ESC-Real skip branch pads its 7x7
    depthwise convolution by 3, so the reference fails on inputs below 4x4 (and ESCRealM, whose
    features are a quarter of the image with ``unshuffle_mod``, below 16x16). Same parameters and
    values as the plain layer wherever that runs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, 1, kernel_size // 2, groups=groups,
                         padding_mode='reflect')

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(reflect_pad_any_size(x, self.padding[0]), weight, bias, self.stride, 0, self.dilation,
                        self.groups)


def image_skip_branch(dim: int, in_channels: int = 3, unshuffle: int = 1) -> nn.Sequential:
    """ESC-Real's image skip: [PixelUnshuffle(f)] -> 1x1 -> 7x7 depthwise (reflect) -> LeakyReLU(0.2) -> 1x1.

    ``(B, in_channels, H, W)`` -> ``(B, dim, H/f, W/f)`` (H, W multiples of f = ``unshuffle``).
    """
    layers: list[nn.Module] = [nn.PixelUnshuffle(unshuffle)] if unshuffle > 1 else []
    layers += [
        nn.Conv2d(in_channels * unshuffle ** 2, dim * 2, 1),
        ReflectConv2d(dim * 2, dim * 2, 7, groups=dim * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim * 2, dim, 1),
    ]
    return nn.Sequential(*layers)


def nearest_conv_x4(dim: int, out_channels: int = 3) -> nn.Sequential:
    """The released ESC-Real upsampler: (nearest x2, conv3x3, LeakyReLU(0.2)) x 2, conv3x3, LeakyReLU(0.2),
    conv3x3 -> ``out_channels``; ``(B, dim, H, W)`` -> ``(B, out_channels, 4H, 4W)``."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode='nearest'),
        nn.Conv2d(dim, dim, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Upsample(scale_factor=2, mode='nearest'),
        nn.Conv2d(dim, dim, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim, dim, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim, out_channels, 3, 1, 1),
    )


class ESCReal(SharedKernelTrunk):
    """ESC-Real (x4 only).

    Args:
        dim, pdim, kernel_size, n_blocks, conv_blocks, window_size, num_heads: as in :class:`ESC`
            (the released model: 64, 16, 13, 10, 5, 32, 4).
        upscaling_factor: must be 4. Default: 4.
        exp_ratio: ConvFFN expansion of the pairs (released model: 2). Default: 2.
        attn_type: ``auto`` | ``naive`` | ``sdpa`` | ``flex``, case-insensitive. Default: ``auto``.
        use_dysample: upsample with :class:`~esc_basicsr.layers.DySample` (``dim -> 3``, x4, 4 groups)
            instead of the released nearest+conv upsampler. Default: False.

    ``features = last(blocks(proj(x))) + proj(x) + skip(x)``, ``out = to_img(features)``.
    Input ``(B, 3, H, W)`` in [0, 1], any H, W >= 1; output ``(B, 3, 4H, 4W)``.
    """

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, upscaling_factor: int = 4, exp_ratio: float = 2, attn_type: str = 'auto',
                 use_dysample: bool = False) -> None:
        super().__init__()
        if upscaling_factor != 4:
            raise ValueError(f'ESCReal supports upscaling_factor=4 only, got {upscaling_factor} '
                             '(ESCRealM is the multi-scale real-world variant)')
        self.upscaling_factor = upscaling_factor
        self.use_dysample = use_dysample
        self.build_trunk(dim, pdim, kernel_size, n_blocks, partial(
            ESCBlock, dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio, attn_type, use_ln=True))
        self.to_img: nn.Module = DySample(dim, 3, 4, groups=4) if use_dysample else nearest_conv_x4(dim)
        self.skip = image_skip_branch(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, 4H, 4W)."""
        x = to_preferred_format(x)
        feat = self.trunk(x) + self.skip(x)
        return self.to_img(feat)


def detect_esc_real(sd: StateDict) -> dict[str, Any] | None:
    """ESC-Real x4: image ``skip`` branch and the released nearest+conv ``to_img.1/4/6/8`` or DySample."""
    if not (is_esc_trunk(sd) and has(sd, 'plk_filter', 'proj.weight', 'skip.0.weight')):
        return None
    if has(sd, 'to_img.1.weight', 'to_img.4.weight', 'to_img.6.weight', 'to_img.8.weight'):
        use_dysample = False
    elif has(sd, 'to_img.offset.weight', 'to_img.end_conv.weight'):
        use_dysample = True
    else:
        return None
    return dict(trunk_arguments(sd), upscaling_factor=4, use_dysample=use_dysample)
