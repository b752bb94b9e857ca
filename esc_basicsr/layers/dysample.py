"""DySample: a learned point-sampling upsampler.

Liu, Lu, Fu and Cao, "Learning to Upsample by Learning to Sample", ICCV 2023 (arXiv 2308.15085),
in the form the ESC authors use (from MoSR / traiNNer-redux): the "LP" variant with a dynamic
scope, feature groups, and a final 1x1 convolution to the output channels. Each output pixel is a
bilinear sample of the input at a predicted position near the sub-pixel centre it covers, so the
layer upsamples content-adaptively at the cost of two 1x1 convolutions and one ``grid_sample``.

Parameter and buffer names match the authors' checkpoints (``offset``, ``scope``, ``end_conv``,
``init_pos``). Unlike the reference, the sampling grid is built on the input's device with plain
tensor ops (the reference allocates pinned memory in every forward and so needs CUDA), and
without Python-side constants, so that it exports to ONNX with dynamic sizes.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def dysample_init_pos(scale: int, groups: int) -> torch.Tensor:
    """The sub-pixel offsets of an ``s x s`` output block, ``(1, 2 * groups * s^2, 1, 1)``.

    Channel ``xy * groups * s^2 + g * s^2 + i * s + j`` holds, for group ``g`` and sub-pixel
    (row ``i``, column ``j``), the x offset ``h[j]`` (``xy = 0``) or the y offset ``h[i]``
    (``xy = 1``), with ``h = (arange(s) - (s - 1) / 2) / s`` in input pixels: the centres of the
    output pixels that an input pixel covers.
    """
    h = (torch.arange(scale, dtype=torch.float32) - (scale - 1) / 2) / scale
    x_off = h.view(1, scale).expand(scale, scale)  # varies along the column j
    y_off = h.view(scale, 1).expand(scale, scale)  # varies along the row i
    grid = torch.stack([x_off, y_off])  # (2, s, s)
    return grid.repeat(1, groups, 1).reshape(1, -1, 1, 1)


class DySample(nn.Module):
    """Upsample ``(B, C, H, W)`` features by ``scale`` through learned bilinear sampling.

    ``offset = offset_conv(x) * sigmoid(scope_conv(x)) * 0.5 + init_pos`` gives, for every input
    pixel, ``s^2`` sampling positions per channel group (in input pixels, relative to the pixel
    centre); they are pixel-shuffled onto the ``(sH, sW)`` grid and each of the ``groups`` channel
    groups is sampled with bilinear ``grid_sample`` (``align_corners=False``, border padding).
    ``end_conv`` then maps the ``C`` channels to ``out_channels``. Batch elements are independent
    and any size down to 1x1 works.

    Args:
        in_channels: input channels C (a multiple of ``groups``).
        out_channels: channels of ``end_conv`` (3 for an image). Ignored without ``end_convolution``.
        scale: integer upscaling factor s >= 1.
        groups: channel groups with their own sampling positions. Default: 4.
        end_convolution: finish with ``end_conv`` (as the ESC authors); otherwise return the
            ``C``-channel samples. Default: True.
        end_kernel: kernel size of ``end_conv`` (odd). Default: 1.

    Shapes:
        input ``(B, C, H, W)`` -> output ``(B, out_channels, s*H, s*W)`` (``C`` channels without
        ``end_convolution``).

    Half-precision inputs are sampled in float32: fp16 coordinates normalised to [-1, 1] cannot
    address the pixels of images wider than about 1000 pixels.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, scale: int = 2, groups: int = 4,
                 end_convolution: bool = True, end_kernel: int = 1) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups:
            raise ValueError(f'DySample: in_channels={in_channels} must be a multiple of groups={groups}')
        if int(scale) != scale or scale < 1:
            raise ValueError(f'DySample: scale must be a positive integer, got {scale}')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.scale, self.groups = int(scale), groups
        n_off = 2 * groups * self.scale ** 2
        # registration order (end_conv, offset, scope) follows the authors' state_dict
        self.end_conv = nn.Conv2d(in_channels, out_channels, end_kernel, 1, end_kernel // 2) \
            if end_convolution else None
        self.offset = nn.Conv2d(in_channels, n_off, 1)
        self.scope = nn.Conv2d(in_channels, n_off, 1, bias=False)
        # start as a fixed bilinear upsampling (positions at the sub-pixel centres): small random
        # offsets (as the authors), zero scope weights, zero offset bias
        nn.init.trunc_normal_(self.offset.weight, std=0.02)
        nn.init.zeros_(self.offset.bias)
        nn.init.zeros_(self.scope.weight)
        self.register_buffer('init_pos', dysample_init_pos(self.scale, groups))

    def sampling_grid(self, x: torch.Tensor) -> torch.Tensor:
        """``grid_sample`` grid ``(B * groups, sH, sW, 2)`` (x, y in [-1, 1]) for ``x`` ``(B, C, H, W)``."""
        b, _, h, w = x.shape
        s, g = self.scale, self.groups
        offset = self.offset(x) * self.scope(x).sigmoid() * 0.5 + self.init_pos  # (B, 2*g*s^2, H, W)
        dtype = torch.promote_types(offset.dtype, torch.float32)
        offset = offset.to(dtype).reshape(b, 2, g * s * s, h, w)
        # pixel centres (i + 0.5) plus the offsets, normalised by (W, H): the reference's
        # 2 * (coords + offset) / (W, H) - 1, with each axis divided by its own traced size
        cols = torch.arange(w, device=x.device, dtype=dtype).view(1, 1, 1, w) + 0.5
        rows = torch.arange(h, device=x.device, dtype=dtype).view(1, 1, h, 1) + 0.5
        gx = 2 * (cols + offset[:, 0]) / w - 1
        gy = 2 * (rows + offset[:, 1]) / h - 1
        # (B, g*s^2, H, W) -> (B, g, sH, sW): the s^2 positions of a pixel onto its output block
        gx, gy = F.pixel_shuffle(gx, s), F.pixel_shuffle(gy, s)
        return torch.stack([gx, gy], dim=-1).flatten(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, out_channels, s*H, s*W)."""
        b, c, h, w = x.shape
        grid = self.sampling_grid(x)
        src = x.reshape(b * self.groups, c // self.groups, h, w).to(grid.dtype)
        out = F.grid_sample(src, grid, mode='bilinear', padding_mode='border', align_corners=False)
        out = out.reshape(b, c, self.scale * h, self.scale * w).to(x.dtype)
        return out if self.end_conv is None else self.end_conv(out)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, scale={self.scale}, groups={self.groups}'
