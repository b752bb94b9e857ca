"""ELAB: ELAN's efficient long-range attention block (ELAN, Zhang et al., ECCV 2022).

``1 + shared_depth`` pairs of (LFE, GMSA), each with a residual connection; only the first
GMSA computes attention maps, the following ``shared_depth`` ones reuse them.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .gmsa import GMSA
from .shift_conv import LFE


class ELAB(nn.Module):
    """Efficient long-range attention block.

    Args:
        channels: feature channels C (``c_elan``).
        exp_ratio: LFE expansion (``r_expand``).
        shifts: 0 for regular windows, > 0 for shifted windows (alternating along the network).
        window_sizes: window size of each GMSA channel group.
        shared_depth: GMSAs after the first that reuse its attention maps (``n_share``).

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``, H and W multiples of every window size.
    """

    def __init__(self, channels: int, exp_ratio: int = 2, shifts: int = 0,
                 window_sizes: Sequence[int] = (4, 8, 16), shared_depth: int = 1) -> None:
        super().__init__()
        depth = 1 + shared_depth
        # ModuleDicts named as in the authors' checkpoints: modules_lfe.lfe_{j}, modules_gmsa.gmsa_{j}
        self.modules_lfe = nn.ModuleDict({f'lfe_{j}': LFE(channels, exp_ratio) for j in range(depth)})
        self.modules_gmsa = nn.ModuleDict({
            f'gmsa_{j}': GMSA(channels, window_sizes, shifts, calc_attn=(j == 0)) for j in range(depth)
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        atns = None
        for lfe, gmsa in zip(self.modules_lfe.values(), self.modules_gmsa.values()):
            x = lfe(x) + x
            y, atns = gmsa(x, atns)
            x = y + x
        return x
