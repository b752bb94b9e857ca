"""Shift convolution and ELAN's local feature extraction (LFE) block.

A shift convolution moves four channel groups by one pixel (right, left, down, up) and keeps the
rest in place, then mixes channels with a 1x1 convolution: a 3x3 receptive field at the cost of
a 1x1 convolution (ELAN, Zhang et al., ECCV 2022).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def shift_kernel(channels: int, n_div: int = 5) -> torch.Tensor:
    """Fixed depthwise ``(channels, 1, 3, 3)`` kernel of the shift convolution.

    Groups of ``channels // n_div`` channels read their left, right, lower and upper neighbour
    (i.e. the content moves right, left, up and down); the remaining channels are kept in place.
    """
    g = channels // n_div
    kernel = torch.zeros(channels, 1, 3, 3)
    kernel[0 * g:1 * g, 0, 1, 2] = 1.0
    kernel[1 * g:2 * g, 0, 1, 0] = 1.0
    kernel[2 * g:3 * g, 0, 2, 1] = 1.0
    kernel[3 * g:4 * g, 0, 0, 1] = 1.0
    kernel[4 * g:, 0, 1, 1] = 1.0
    return kernel


class _ShiftPointwise(nn.Module):
    """Fixed depthwise shift (zero padding at the borders) followed by a trainable 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # a persistent buffer, not a frozen Parameter: it is stored in checkpoints under the
        # authors' key ``weight`` but is not handed to optimizers or counted as trainable
        self.register_buffer('weight', shift_kernel(in_channels))
        self.conv1x1 = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, None, 1, 1, groups=x.shape[1])
        return self.conv1x1(x)


class ShiftConv2d(nn.Module):
    """Shift convolution ``(B, Cin, H, W) -> (B, Cout, H, W)``.

    The layer lives one level down, in ``shift_conv``, only so that the state-dict keys are the
    authors' (``shift_conv.weight``, ``shift_conv.conv1x1.*``): their wrapper chose between two
    implementations there.

    Args:
        in_channels: input channels Cin.
        out_channels: output channels Cout.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.shift_conv = _ShiftPointwise(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shift_conv(x)


class LFE(nn.Module):
    """Local feature extraction: ``conv1(relu(conv0(x)))`` with two shift convolutions.

    The residual connection is added by the caller (``ELAB``). ReLU is fixed: the authors' code
    accepts an ``act_type`` setting but never passes it to this block.

    Args:
        channels: input/output channels C.
        exp_ratio: hidden width is ``C * exp_ratio`` (``r_expand``).

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, channels: int, exp_ratio: int = 2) -> None:
        super().__init__()
        self.conv0 = ShiftConv2d(channels, channels * exp_ratio)
        self.conv1 = ShiftConv2d(channels * exp_ratio, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(F.relu(self.conv0(x)))
