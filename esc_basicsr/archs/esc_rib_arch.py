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
is converted first, as theirs: :func:`convert_upsampler_scale`). Beside the network, what its row of the
architecture table names: detection from a state_dict (:func:`detect_esc_rib`), the checkpoint conversion
(:func:`convert_upsampler_checkpoint`) and the descriptor tags (:func:`tags`).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn as nn

from ..layers import ESCBlock, LayerNorm2d
from ..layers.attention_backends import ATTN_TYPES, normalize_attn_type
from ..layers.memory_format import to_preferred_format
from ..layers.rib_attention import FlashBiasAttention, LowRankWindowAttention, RIBAttention, default_rank
from ..layers.skip_upsampler import SkipUpsampler
from .checkpoint import convert_subpixel_scale, subpixel_scale
from .esc_trunk import SharedKernelTrunk, fold_geometric_ensemble, trunk_tags
from .state_dict_layout import LayoutError, StateDict, count, expansion_ratio, has, has_prefix, indices

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


def convert_upsampler_checkpoint(state_dict: Mapping[str, torch.Tensor],
                                 kwargs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``state_dict`` of an ESCRIB made loadable into the configuration ``kwargs`` (constructor arguments
    with defaults): :func:`convert_upsampler_scale` to ``upscaling_factor`` for its ``upsampler_type``
    (the table's ``convert_checkpoint``; :meth:`ESCRIB.load_state_dict` applies it)."""
    return convert_upsampler_scale(state_dict, kwargs['upscaling_factor'], kwargs['upsampler_type'])


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
        """``nn.Module.load_state_dict`` after :func:`convert_upsampler_checkpoint` (a checkpoint of another
        scale initialises this one, as in the authors' code; logged)."""
        state_dict = convert_upsampler_checkpoint(
            state_dict, {'upscaling_factor': self.upscaling_factor, 'upsampler_type': self.upsampler_type})
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def convert(self) -> ESCRIB:
        """The authors' name for deployment folding: :func:`~.esc_trunk.fold_geometric_ensemble` (the ensemble
        of the shared large kernel stored in ``plk_filter``); returns the model."""
        return fold_geometric_ensemble(self)

    def extra_repr(self) -> str:
        return f'attn_type={self.attn_kind!r}, upscaling_factor={self.upscaling_factor}'


# ------------------------------------------------------------------------------- table entries

RIB_WINDOW = 64  # ESC-RIB's window: what detection answers for RIB weights, which do not fix it


def tags(kwargs: Mapping[str, Any]) -> list[str]:
    """The trunk's size and the attention: ``['64dim', '5blocks', 'window 64', 'RIB rank 16']``."""
    rank = next((r for r in (kwargs['rank'], kwargs['flashbias_rank']) if r is not None), None)
    rank = default_rank(kwargs['dim'] // kwargs['num_heads']) if rank is None else rank
    return trunk_tags(kwargs) + [f'{attention_kind(kwargs["attn_type"])} rank {rank}']


def _skip_upsampler(sd: StateDict) -> dict[str, Any]:
    """``upscaling_factor``, ``upsampler_type`` (and ``intermediate_dim``) of an ESCRIB ``upsampler``
    (:class:`~esc_basicsr.layers.SkipUpsampler`). ``nn+conv`` at x3 (one x3 step) has the layout of x2
    (one x2 step): a power of two is assumed."""
    if 'upsampler.feature_conv.weight' in sd:  # pixelshuffle: dim -> F, F -> F r^2, F -> 3
        nf = sd['upsampler.feature_conv.weight'].shape[0]
        scale = subpixel_scale(sd['upsampler.up_conv.weight'].shape[0], nf)
        return dict(upscaling_factor=scale, upsampler_type='pixelshuffle', intermediate_dim=nf)
    if 'upsampler.f.0.weight' in sd:  # nn+conv: dim -> F, log2(r) x [up, F -> F], F -> 3
        convs = indices(sd, r'upsampler\.f\.(\d+)\.weight')
        return dict(upscaling_factor=2 ** (len(convs) - 2), upsampler_type='nn+conv',
                    intermediate_dim=sd['upsampler.f.0.weight'].shape[0])
    if 'upsampler.up_conv.weight' in sd:  # pixelshuffle_direct: dim -> 3 r^2
        return dict(upscaling_factor=subpixel_scale(sd['upsampler.up_conv.weight'].shape[0]),
                    upsampler_type='pixelshuffle_direct')
    raise LayoutError('ESCRIB upsampler: no up_conv or f.* weights')


def detect_esc_rib(sd: StateDict, window_size: int = RIB_WINDOW) -> dict[str, Any] | None:
    """ESCRIB (any size): ESC's blocks with RIB (``to_hidden``/``to_q``/``to_k``) or FlashBias
    (``flashbias_q``/``flashbias_k``) attention instead of a bias table, ``last.0/1``, ``upsampler.*``.

    The weights fix every size argument, the attention kind and rank, RIB's hidden width and
    frequencies, the gate, ``use_ln``, the upsampler and the scale. FlashBias factors
    ``(heads, w*w, rank)`` fix the window; RIB weights do not (its MLP runs over coordinates of any
    window): ``window_size`` is then ESC-RIB's :data:`RIB_WINDOW` unless given (or overridden:
    ``from_state_dict(sd, window_size=32)``). Not ``attn_backend`` (a backend choice, default ``auto``).
    """
    attn = 'blocks.0.attn.'
    if not (has(sd, 'plk_filter', 'proj.weight', 'last.1.weight', f'{attn}to_qkv.weight')
            and has_prefix(sd, 'upsampler.')):
        return None
    if has(sd, f'{attn}to_hidden', f'{attn}to_q', f'{attn}to_k'):
        heads, hidden_dim, rank = sd[f'{attn}to_q'].shape
        n_in = sd[f'{attn}to_hidden'].shape[0]
        if (n_in - 2) % 4:
            raise LayoutError(f'RIB to_hidden has {n_in} inputs, not 2 + 4 * n_freqs')
        kind = dict(attn_type='RIB', rank=rank, rib_hidden_dim=hidden_dim, rib_n_freqs=(n_in - 2) // 4)
    elif has(sd, f'{attn}flashbias_q', f'{attn}flashbias_k'):
        heads, n, rank = sd[f'{attn}flashbias_q'].shape
        window_size = math.isqrt(n)
        if window_size * window_size != n:
            raise LayoutError(f'flashbias_q {tuple(sd[f"{attn}flashbias_q"].shape)} is not (heads, w*w, rank)')
        kind = dict(attn_type='FlashBias', rank=rank)
    else:
        return None
    dim, kernel = sd['proj.weight'].shape[0], sd['plk_filter']
    n_blocks = count(sd, r'blocks\.(\d+)\.conv_out\.weight', 'blocks')
    conv_blocks = count(sd, r'blocks\.0\.pconvs\.(\d+)\.aggr\.weight', 'ConvAttn modules')
    hidden = sd['blocks.0.convffns.0.proj.weight'].shape[0]
    gate = 'DWC' if f'{attn}gate.1.weight' in sd else 'Linear' if f'{attn}gate.0.weight' in sd else None
    return dict(dim=dim, pdim=kernel.shape[0], kernel_size=kernel.shape[-1], n_blocks=n_blocks,
                conv_blocks=conv_blocks, window_size=window_size, num_heads=heads,
                exp_ratio=expansion_ratio(hidden, dim), use_ln='blocks.0.lns.0.weight' in sd, **kind,
                gate_type=gate, **_skip_upsampler(sd))
