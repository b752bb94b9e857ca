"""ESC-LTE: arbitrary-scale super-resolution with ESC as the encoder of LTE.

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671), arbitrary-scale results; decoder from Lee and Jin,
CVPR 2022. Design: ESC without its upsampler, ``feat = last(blocks(proj(x))) + proj(x)``, feeds
the LTE implicit decoder (:class:`esc_basicsr.layers.lte.LTE`): one model for any output size,
trained with scales x1-x4 and evaluated up to x30.

Parameter names match the authors' checkpoints (``encoder.*``, ``coef.*``, ``freq.*``,
``phase.weight``, ``imnet.layers.*``), so they load with ``strict=True``.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..layers import ESCBlock
from ..layers.lte import LTE
from ..layers.memory_format import to_preferred_format
from .esc_trunk import (SharedKernelTrunk, fold_geometric_ensemble, geometric_ensemble_folded, is_esc_trunk,
                        trunk_arguments)
from .state_dict_layout import StateDict, has, indices


class ESCEncoder(SharedKernelTrunk):
    """ESC's feature trunk alone: ``(B, 3, h, w)`` -> ``(B, dim, h, w)`` (arguments as :class:`ESC`)."""

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, exp_ratio: float = 2, attn_type: str = 'auto', use_ln: bool = False) -> None:
        super().__init__()
        self.build_trunk(dim, pdim, kernel_size, n_blocks, partial(
            ESCBlock, dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio, attn_type, use_ln))

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


def detect_esc_lte(sd: StateDict) -> dict[str, Any] | None:
    """ESC-LTE (arbitrary scale): ESC trunk under ``encoder.``, LTE decoder ``coef/freq/phase/imnet``."""
    if not (is_esc_trunk(sd, 'encoder.') and has(sd, 'encoder.plk_filter', 'coef.weight', 'freq.weight',
                                                 'phase.weight')):
        return None
    layers = indices(sd, r'imnet\.layers\.(\d+)\.weight')
    if not layers:
        return None
    kwargs = trunk_arguments(sd, 'encoder.')
    kwargs['use_ln'] = 'encoder.blocks.0.lns.0.weight' in sd
    kwargs['hidden_dim'] = sd['coef.weight'].shape[0]
    kwargs['imnet_hidden'] = [sd[f'imnet.layers.{i}.weight'].shape[0] for i in layers[:-1]]
    return kwargs
