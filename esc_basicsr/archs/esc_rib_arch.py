"""ESC-RIB: ESC whose window attention carries a rank-factorized implicit neural bias (RIB).

Lee, Yun, Im and Ro, "Rank-Factorized Implicit Neural Bias: Scaling Super-Resolution Transformer with
FlashAttention" (arXiv 2603.06738), class ``ESCRIB`` of the authors' SST repository. Design: ESC's trunk
(blocks of one window self-attention and ConvAttn/ConvFFN pairs sharing one geometric-ensembled large
kernel; first ConvFFN 4x wide, no shifted windows) with 64x64 windows whose position information is a
pair of low-rank factors concatenated to q and k (RIB: from a small MLP over pixel coordinates; or
FlashBias: learned per position), so attention runs on plain fused kernels; a DWC gate on the attention
output; LayerNorm before the last convolution; the SST upsampler.

Constructor arguments are the authors' (``attn_type: RIB`` or ``FlashBias`` selects the attention kind);
parameter names match their checkpoints, which load with ``strict=True`` (a checkpoint of another scale
is converted first, as theirs: :func:`convert_upsampler_scale`).
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from ..layers import ESCBlock, LayerNorm2d
from ..layers.attention_backends import ATTN_TYPES, normalize_attn_type
from ..layers.memory_format import to_preferred_format
from ..layers.rib_attention import FlashBiasAttention, LowRankWindowAttention, RIBAttention
from ..layers.skip_upsampler import SkipUpsampler
from .checkpoint import convert_subpixel_scale
from .esc_trunk import SharedKernelTrunk, fold_geometric_ensemble

ATTENTION_KINDS = ('RIB', 'FlashBias')
# attention types of the authors' code that esc_basicsr does not build for ESCRIB
_OTHER_AUTHORS_KINDS = ('NoPE', 'RIBSiren', 'RoPEViT')


def attention_kind(attn_type: str) -> str:
    """The authors' ``attn_type`` of ESCRIB, case-insensitive, as ``RIB`` or ``FlashBias``.

    Raises:
        ValueError: for a backend name (``auto|naive|sdpa|flex``: the backend is ``attn_backend``; in the
            authors' code ``Naive/SDPA/Flex`` select ESC's relative-position-bias attention) and for
            any other kind.
    """
    if isinstance(attn_type, str):
        for kind in ATTENTION_KINDS:
            if attn_type.lower() == kind.lower():
                return kind
        if attn_type.lower() in ATTN_TYPES:
            raise ValueError(
                f'ESCRIB: attn_type selects the attention kind, one of {ATTENTION_KINDS} (the authors\' values); '
                f'{attn_type!r} is an attention backend: pass attn_backend={attn_type.lower()!r} (or set '
                'ESC_BASICSR_ATTN). In the authors\' code Naive/SDPA/Flex build ESC\'s relative-position-bias '
                'attention: use ESC for that.')
        if attn_type.lower() in {k.lower() for k in _OTHER_AUTHORS_KINDS}:
            raise ValueError(f'ESCRIB: attn_type {attn_type!r} of the authors\' code is not implemented in '
                             f'esc_basicsr; choose one of {ATTENTION_KINDS}')
    raise ValueError(f'ESCRIB: attn_type must be one of {ATTENTION_KINDS} (case-insensitive), got {attn_type!r}')


def convert_upsampler_scale(state_dict: Mapping[str, torch.Tensor], scale: int,
                            upsampler_type: str = 'pixelshuffle_direct',
                            prefix: str = 'upsampler') -> dict[str, torch.Tensor]:
    """The authors' scale-converting load (SST ``ImageArchitecture.interpolate_upsampler``): a copy of
    ``state_dict`` whose sub-pixel ``{prefix}.up_conv`` is resized to ``scale``.

    ``pixelshuffle_direct``: ``up_conv`` has ``3 r^2`` outputs ordered (rgb, row, col); ``pixelshuffle``:
    ``F r^2`` outputs (F = its input channels). Each output block is resized from the checkpoint's r to
    ``scale`` by bilinear interpolation (align_corners False), weight and bias
    (:func:`~.checkpoint.resize_subpixel`). ``nn+conv`` has no sub-pixel layer and is returned unchanged,
    as is a state_dict already at ``scale``. The result initialises fine-tuning; it is not a trained model.
    """
    weight = state_dict.get(f'{prefix}.up_conv.weight')
    if upsampler_type == 'nn+conv' or weight is None:
        return dict(state_dict)
    if upsampler_type not in ('pixelshuffle_direct', 'pixelshuffle'):
        raise ValueError(f'unknown upsampler_type {upsampler_type!r}')
    colors = 3 if upsampler_type == 'pixelshuffle_direct' else weight.shape[1]
    return convert_subpixel_scale(state_dict, scale, prefix=f'{prefix}.up_conv', colors=colors)


class ESCRIB(SharedKernelTrunk):
    """ESC-RIB (and ESC with FlashBias attention), the authors' ``ESCRIB``.

    Args:
        dim: feature channels (ESC-RIB 64).
        pdim: channels of the shared large kernel (16).
        kernel_size: shared large-kernel size (13).
        n_blocks: blocks (5).
        conv_blocks: ConvAttn/ConvFFN pairs per block (5).
        window_size: attention window (ESC-RIB 64).
        num_heads: attention heads (4).
        upscaling_factor: output scale r.
        exp_ratio: ConvFFN expansion of the pairs (ESC-RIB 1.25). Default: 2 (as the authors').
        attn_type: the attention kind, ``RIB`` or ``FlashBias`` (the authors' values, case-insensitive).
            Default: ``RIB`` (the authors' default ``Flex`` builds ESC's relative-position-bias attention,
            which is :class:`~esc_basicsr.archs.ESC`).
        use_ln: LayerNorm before each ConvFFN of the pairs. Default: False.
        flashbias_rank: rank of the positional factors when ``rank`` is not given. Default: None.
        rank: rank of the positional factors (ESC-RIB 16). Default (both None): ``256 - head_dim``.
        rib_hidden_dim: width of RIB's coordinate MLP (ESC-RIB 32). Default: 64 (None: 32).
        rib_n_freqs: sine/cosine frequencies of RIB's coordinate features. Default: 10 (None: 10).
        gate_type: attention output gate, ``None``, ``Linear`` or ``DWC`` (ESC-RIB). Default: None.
        upsampler_type: ``pixelshuffle_direct`` | ``pixelshuffle`` | ``nn+conv``
            (:class:`~esc_basicsr.layers.SkipUpsampler`). Default: ``pixelshuffle_direct``.
        intermediate_dim: channels inside the ``pixelshuffle`` / ``nn+conv`` upsamplers. Default: 64.
        attn_backend: ours: the attention backend ``auto`` | ``naive`` | ``sdpa`` | ``flex``
            (case-insensitive; ``flex`` runs as ``sdpa``, see
            :func:`~esc_basicsr.layers.resolve_low_rank_backend`). Default: ``auto``.

    Input ``(B, 3, H, W)`` in [0, 1], any H, W >= 1 and any batch; output ``(B, 3, rH, rW)``.
    """

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, upscaling_factor: int, exp_ratio: float = 2, attn_type: str = 'RIB',
                 use_ln: bool = False, flashbias_rank: int | None = None, rank: int | None = None,
                 rib_hidden_dim: int | None = 64, rib_n_freqs: int | None = 10, gate_type: str | None = None,
                 upsampler_type: str = 'pixelshuffle_direct', intermediate_dim: int = 64,
                 attn_backend: str = 'auto') -> None:
        super().__init__()
        self.attn_kind = attention_kind(attn_type)
        attn_backend = normalize_attn_type(attn_backend)
        rank = flashbias_rank if rank is None else rank
        self.upscaling_factor = upscaling_factor
        self.upsampler_type = upsampler_type
        def attention() -> LowRankWindowAttention:
            if self.attn_kind == 'RIB':
                return RIBAttention(dim, window_size, num_heads, rank, rib_hidden_dim, rib_n_freqs, gate_type,
                                    attn_backend)
            return FlashBiasAttention(dim, window_size, num_heads, rank, gate_type, attn_backend)

        self.build_trunk(
            dim, pdim, kernel_size, n_blocks,
            block=lambda: ESCBlock(dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio,
                                   use_ln=use_ln, proj_ratio=4, attention=attention()),
            last=lambda: nn.Sequential(LayerNorm2d(dim), nn.Conv2d(dim, dim, 3, 1, 1)))
        self.upsampler = SkipUpsampler(dim, upscaling_factor, upsampler_type, intermediate_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, r*H, r*W)."""
        x = to_preferred_format(x)
        return self.upsampler(self.trunk(x), x)

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` after :func:`convert_upsampler_scale` (a checkpoint of another
        scale initialises this one, as in the authors' code; logged)."""
        state_dict = convert_upsampler_scale(state_dict, self.upsampler.upscaling_factor, self.upsampler_type)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def convert(self) -> ESCRIB:
        """The authors' name for deployment folding: :func:`~.esc_trunk.fold_geometric_ensemble` (the ensemble
        of the shared large kernel stored in ``plk_filter``); returns the model."""
        return fold_geometric_ensemble(self)

    def extra_repr(self) -> str:
        return f'attn_type={self.attn_kind!r}, upscaling_factor={self.upscaling_factor}'
