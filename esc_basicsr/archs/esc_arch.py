"""ESC: Emulating Self-attention with Convolution for Efficient Image Super-Resolution.

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671). Design: a lightweight SR transformer in which one
32x32-window self-attention per block is followed by several ConvAttn modules that share a single
geometric-ensembled 13x13 large kernel across the whole network (plus small dynamic kernels),
with a pixel-shuffle head and a nearest-neighbour image skip.

Constructor arguments use the names of the authors' option files, and parameter/buffer names
match their checkpoints, so released ``params``/``params_ema`` load with ``strict=True``.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import ESCBlock
from ..layers.memory_format import to_preferred_format
from .checkpoint import ConvertsSubpixelScale, subpixel_scale
from .esc_trunk import SharedKernelTrunk, is_esc_trunk, trunk_arguments
from .state_dict_layout import StateDict, has, has_prefix


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
        self.build_trunk(dim, pdim, kernel_size, n_blocks, partial(
            ESCBlock, dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio, attn_type, use_ln))
        self.to_img = nn.Conv2d(dim, 3 * upscaling_factor**2, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, r*H, r*W)."""
        x = to_preferred_format(x)
        feat = self.trunk(x)
        r = self.upscaling_factor
        out = self.to_img(feat) + torch.repeat_interleave(x, r * r, dim=1)
        return F.pixel_shuffle(out, r)


def detect_esc(sd: StateDict) -> dict[str, Any] | None:
    """ESC / ESC-light / ESC-XL (any size): shared ``plk_filter``, sub-pixel ``to_img`` (3*r*r outputs)."""
    if not (is_esc_trunk(sd) and has(sd, 'plk_filter', 'proj.weight', 'to_img.weight')) \
            or has_prefix(sd, 'skip.') or 'lk_spatial' in sd:
        return None
    kwargs = trunk_arguments(sd)
    kwargs['upscaling_factor'] = subpixel_scale(sd['to_img.weight'].shape[0])
    kwargs['use_ln'] = 'blocks.0.lns.0.weight' in sd
    return kwargs
