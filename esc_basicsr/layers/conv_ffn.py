"""Convolutional feed-forward network (1x1 expand, depthwise conv with residual, 1x1 project)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvFFN(nn.Module):
    """``aggr(gelu(dwc(h)) + h)`` with ``h = gelu(proj(x))``.

    Args:
        dim: input/output channels C.
        kernel_size: depthwise kernel size.
        exp_ratio: hidden width is ``int(dim * exp_ratio)``.
    """

    def __init__(self, dim: int, kernel_size: int = 3, exp_ratio: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * exp_ratio)
        self.proj = nn.Conv2d(dim, hidden, 1)
        self.dwc = nn.Conv2d(hidden, hidden, kernel_size, 1, kernel_size // 2, groups=hidden)
        self.aggr = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        h = F.gelu(self.proj(x))
        if torch.is_grad_enabled():
            return self.aggr(F.gelu(self.dwc(h)) + h)
        # inference: reuse buffers in place (one hidden-width tensor fewer at the memory peak)
        t = torch.ops.aten.gelu_(self.dwc(h))
        return self.aggr(t.add_(h))
