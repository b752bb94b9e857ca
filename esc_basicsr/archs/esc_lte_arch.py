"""ESC-LTE: arbitrary-scale super-resolution with ESC as the encoder of LTE.

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671), arbitrary-scale results; decoder from Lee and Jin,
CVPR 2022. Design: ESC without its upsampler, ``feat = last(blocks(proj(x))) + proj(x)``, feeds
the LTE implicit decoder (:class:`esc_basicsr.layers.lte.LTE`): one model for any output size,
trained with scales x1-x4 and evaluated up to x30.

Parameter names match the authors' checkpoints (``encoder.*``, ``coef.*``, ``freq.*``,
``phase.weight``, ``imnet.layers.*``), so they load with ``strict=True``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ..layers import ESCBlock
from ..layers.lte import LTE
from ..layers.memory_format import to_preferred_format
from .deploy import fold_geometric_ensemble, geometric_ensemble_folded
from .esc_arch import GeometricEnsemble, SharedKernelTrunk


class ESCEncoder(SharedKernelTrunk):
    """ESC's feature trunk alone: ``(B, 3, h, w)`` -> ``(B, dim, h, w)`` (arguments as :class:`ESC`)."""

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, exp_ratio: float = 2, attn_type: str = 'auto', use_ln: bool = False) -> None:
        super().__init__()
        self.plk_func: nn.Module = GeometricEnsemble()
        self.plk_filter = nn.Parameter(torch.empty(pdim, pdim, kernel_size, kernel_size))
        nn.init.orthogonal_(self.plk_filter)  # as ESC: important for early training
        self.proj = nn.Conv2d(3, dim, 3, 1, 1)
        self.blocks = nn.ModuleList([
            ESCBlock(dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio, attn_type, use_ln)
            for _ in range(n_blocks)
        ])
        self.last = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) -> (B, dim, h, w)."""
        return self.trunk(to_preferred_format(x))


class ESCLTE(LTE):
    """ESC + LTE, one network for every scale (no ``upscaling_factor``).

    Args:
        dim, pdim, kernel_size, n_blocks, conv_blocks, window_size, num_heads, exp_ratio, attn_type,
            use_ln: the ESC encoder's, as in :class:`esc_basicsr.archs.ESC` (paper: the base ESC
            configuration 64, 16, 13, 5, 5, 32, 4, 1.25, no LayerNorm).
        hidden_dim: LTE's coef/freq channels and MLP input. Default: 256.
        imnet_hidden: LTE's MLP hidden widths. Default: (256, 256, 256).

    Methods (images in [0, 1]): ``query(lq, coord, cell) -> (B, Q, 3)``, ``upscale(lq, (H, W)) ->
    (B, 3, H, W)``; ``forward`` = ``query``. See :class:`esc_basicsr.layers.lte.LTE`.
    """

    arbitrary_scale = True  # tools: the output size is an argument, not a property of the network

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, exp_ratio: float = 2, attn_type: str = 'auto', use_ln: bool = False,
                 hidden_dim: int = 256, imnet_hidden: Sequence[int] = (256, 256, 256)) -> None:
        encoder = ESCEncoder(dim, pdim, kernel_size, n_blocks, conv_blocks, window_size, num_heads, exp_ratio,
                             attn_type, use_ln)
        super().__init__(encoder, dim, hidden_dim, imnet_hidden)


def fold_esc_lte(model: nn.Module) -> nn.Module:
    """Deployment folding (table entry): the encoder's geometric ensemble, as for ESC; the decoder
    has nothing to fold."""
    fold_geometric_ensemble(model.encoder)
    return model


def esc_lte_folded(model: nn.Module) -> bool:
    """Whether :func:`fold_esc_lte` was applied."""
    return geometric_ensemble_folded(model.encoder)
