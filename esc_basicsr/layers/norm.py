"""Channels-first LayerNorm used throughout ESC."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a ``(B, C, H, W)`` tensor.

    Parameters are named ``weight``/``bias`` like the reference ``LayerNorm(data_format=
    'channels_first')``, so released checkpoints load unchanged.

    Args:
        num_channels: C.
        eps: numerical epsilon. Default: 1e-6 (the reference value).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        # F.layer_norm on a channels-last view keeps one fused kernel; the permutes are views
        # and the result is returned in the input's memory format.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (self.num_channels,), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f'{self.num_channels}, eps={self.eps}'
