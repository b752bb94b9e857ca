"""ESCRealM: the authors' multi-scale real-world ESC (x1, x2, x3, x4 and other powers of two).

Lee, Yun and Ro, ICCV 2025 (arXiv 2503.06671); the variant is the authors' answer to their issue #2
(also trained by traiNNer-redux users). Design: ESC-Real's trunk and image skip branch with a
choice of five upsamplers (MoSR v2's unified upsampler, :class:`~esc_basicsr.layers.UniUpsample`)
and, for scales 1 and 2, a pixel-unshuffled input (``unshuffle_mod``): the image is folded by
f = 4 / scale into channels, the trunk runs at a quarter (x1) or half (x2) of the resolution and
the network upsamples by 4, which makes the low scales as cheap as x4.

Parameter and buffer names match the authors' checkpoints, ``to_img.MetaUpsample`` included, so
released ``params``/``params_ema`` load with ``strict=True``.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Mapping

import torch
import torch.nn as nn

from ..layers import ESCBlock
from ..layers.memory_format import to_preferred_format
from ..layers.padding import pad_to_multiple
from ..layers.upsamplers import UPSAMPLERS, UniUpsample
from .checkpoint import subpixel_scale
from .esc_real_arch import image_skip_branch
from .esc_trunk import SharedKernelTrunk, is_esc_trunk, trunk_arguments, trunk_tags
from .state_dict_layout import LayoutError, StateDict, has_prefix, indices


def unshuffle_factor(upscaling_factor: int, upsampler: str, unshuffle_mod: bool) -> int:
    """The factor f by which ESCRealM pixel-unshuffles its input: ``4 // r`` for r < 3 with ``unshuffle_mod``
    (the network then upsamples by 4), else 1. ``conv`` cannot upsample, so it never unshuffles (a x1
    ``conv`` network runs at full resolution)."""
    return 4 // upscaling_factor if unshuffle_mod and upscaling_factor < 3 and upsampler != 'conv' else 1


def unshuffled_proj(dim: int, unshuffle: int) -> nn.Module:
    """ESCRealM's ``proj``: PixelUnshuffle(f) then conv3x3 ``3 f^2 -> dim`` (``(B, 3, H, W)`` ->
    ``(B, dim, H/f, W/f)``); a plain conv3x3 ``3 -> dim`` when f = 1."""
    f = unshuffle
    if f == 1:
        return nn.Conv2d(3, dim, 3, 1, 1)
    return nn.Sequential(nn.PixelUnshuffle(f), nn.Conv2d(3 * f * f, dim, 3, 1, 1))


class ESCRealM(SharedKernelTrunk):
    """ESCRealM: ESC-Real at scales 1-4 with a selectable upsampler.

    Args:
        dim, pdim, kernel_size, n_blocks, conv_blocks, window_size, num_heads: as in :class:`ESC`.
        upscaling_factor: output scale r: 1, 2, 3, 4 (or a higher power of two). Default: 4.
        exp_ratio: ConvFFN expansion of the pairs. Default: 2.
        attn_type: ``auto`` | ``naive`` | ``sdpa`` | ``flex``, case-insensitive. Default: ``auto``.
        mid_dim: channels inside the ``pixelshuffle`` and ``dysample`` upsamplers. Default: 48.
        upsampler: ``conv`` | ``pixelshuffledirect`` | ``pixelshuffle`` | ``nearest+conv`` | ``dysample``
            (``pixelshuffle`` and ``nearest+conv``: r of 1, 3 or a power of two; ``conv``: r = 1,
            a same-size network). Default: ``nearest+conv``.
        unshuffle_mod: for r < 3, pixel-unshuffle the input by f = 4 / r (``proj`` and ``skip``
            start with ``PixelUnshuffle(f)``; the input is reflect-padded on the bottom/right to a
            multiple of f) and upsample by 4. No effect at r >= 3 or with ``conv`` (which cannot
            upsample). Default: True.

    ``features = last(blocks(proj(x))) + proj(x) + skip(x)``, ``out = to_img(features)`` cropped
    to ``(rH, rW)``. Input ``(B, 3, H, W)`` in [0, 1], any H, W >= 1; output ``(B, 3, rH, rW)``.
    """

    def __init__(self, dim: int, pdim: int, kernel_size: int, n_blocks: int, conv_blocks: int, window_size: int,
                 num_heads: int, upscaling_factor: int = 4, exp_ratio: float = 2, attn_type: str = 'auto',
                 mid_dim: int = 48, upsampler: str = 'nearest+conv', unshuffle_mod: bool = True) -> None:
        super().__init__()
        if int(upscaling_factor) != upscaling_factor or upscaling_factor < 1:
            raise ValueError(f'ESCRealM: upscaling_factor must be a positive integer, got {upscaling_factor}')
        if upsampler not in UPSAMPLERS:
            raise ValueError(f'ESCRealM: upsampler must be one of {UPSAMPLERS}, got {upsampler!r}')
        self.upscaling_factor = int(upscaling_factor)
        self.unshuffle_mod = unshuffle_mod
        # the input folding factor f and the scale of the upsampler
        self.unshuffle = f = unshuffle_factor(self.upscaling_factor, upsampler, unshuffle_mod)
        upsampler_scale = 4 if f > 1 else self.upscaling_factor
        self.build_trunk(
            dim, pdim, kernel_size, n_blocks,
            partial(ESCBlock, dim, pdim, conv_blocks, kernel_size, window_size, num_heads, exp_ratio, attn_type,
                    use_ln=True),
            proj=partial(unshuffled_proj, dim, f), before_blocks={'skip': partial(image_skip_branch, dim, 3, f)})
        try:
            self.to_img = UniUpsample(upsampler, upsampler_scale, dim, 3, mid_dim, 4)
        except ValueError as exc:
            raise ValueError(f'ESCRealM(upscaling_factor={self.upscaling_factor}, upsampler={upsampler!r}): '
                             f'{exc}') from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, rH, rW)."""
        h, w = x.shape[-2:]
        x = to_preferred_format(x)
        if self.unshuffle > 1:
            x = pad_to_multiple(x, self.unshuffle)
        feat = self.trunk(x) + self.skip(x)
        out = self.to_img(feat)
        if self.unshuffle > 1:
            r = self.upscaling_factor
            out = out[:, :, :h * r, :w * r]
        return out

    def extra_repr(self) -> str:
        return f'upscaling_factor={self.upscaling_factor}, unshuffle={self.unshuffle}'


# ------------------------------------------------------------------------------- table entries

def input_multiple(kwargs: Mapping[str, Any]) -> int:
    """The input size ESCRealM's computation is aligned to: its window on the trunk, which runs on the
    input unshuffled by f (:func:`unshuffle_factor`), so ``window_size * f`` input pixels."""
    f = unshuffle_factor(int(kwargs['upscaling_factor']), kwargs['upsampler'], kwargs['unshuffle_mod'])
    return int(kwargs['window_size']) * f


def tags(kwargs: Mapping[str, Any]) -> list[str]:
    """The trunk's size and the upsampler: ``['64dim', '10blocks', 'window 32', 'nearest+conv']``."""
    return trunk_tags(kwargs) + [str(kwargs['upsampler'])]


def _uni_upsampler(sd: StateDict, dim: int) -> tuple[str, int, int]:
    """``(method, upsampler scale, mid_dim)`` of an ESCRealM ``to_img`` (UniUpsample) from its weights.

    ``MetaUpsample`` (``[version, method, scale, dim, out, mid, group]``, uint8) is authoritative where
    present; the conv layout alone cannot tell ``nearest+conv`` x2 from x3 (same keys) and then
    assumes a power of two, as the authors' training configurations use.
    """
    meta = sd.get('to_img.MetaUpsample')
    convs = {i: sd[f'to_img.{i}.weight'] for i in indices(sd, r'to_img\.(\d+)\.weight')}
    dysample = indices(sd, r'to_img\.(\d+)\.offset\.weight')
    if dysample:
        i = dysample[0]
        mid = sd[f'to_img.{i}.offset.weight'].shape[1]
        scale = math.isqrt(sd[f'to_img.{i}.offset.weight'].shape[0] // (2 * 4))  # groups: 4 in ESCRealM
        method, mid_known = 'dysample', True
    elif not convs:
        raise LayoutError('ESCRealM to_img: no convolution or DySample weights')
    elif len(convs) == 1:  # conv (x1) or pixelshuffledirect: one conv dim -> 3*s^2
        scale = subpixel_scale(convs[0].shape[0])
        method, mid, mid_known = ('conv' if scale == 1 else 'pixelshuffledirect'), 48, False
    elif convs[0].shape[0] != dim:  # pixelshuffle: dim -> mid, [mid -> 4*mid | 9*mid]..., mid -> 3
        mid = convs[0].shape[0]
        steps = [w.shape[0] // mid for i, w in sorted(convs.items())[1:-1]]
        scale = 3 if steps == [9] else 2 ** len(steps)
        method, mid_known = 'pixelshuffle', True
    else:  # nearest+conv: log2(s) x [dim -> dim, up 2], dim -> dim, dim -> 3
        scale, method, mid, mid_known = 2 ** (len(convs) - 2), 'nearest+conv', 48, False
    if meta is not None and meta.numel() == 7:
        v = [int(x) for x in meta.flatten().tolist()]
        if v[1] < len(UPSAMPLERS):
            method = UPSAMPLERS[v[1]]
        scale = v[2] or scale
        if not mid_known:
            mid = v[5]  # unused by the layout, but compared when MetaUpsample is loaded
    return method, scale, mid


def detect_esc_realm(sd: StateDict) -> dict[str, Any] | None:
    """ESCRealM: ESC-Real's trunk and skip, ``to_img`` a UniUpsample (keys from index 0, ``MetaUpsample``),
    optionally a pixel-unshuffled input (``proj.1``/``skip.1``: scale = 4 / unshuffle factor)."""
    if not (is_esc_trunk(sd) and 'plk_filter' in sd and has_prefix(sd, 'skip.')):
        return None
    if not ('to_img.MetaUpsample' in sd or has_prefix(sd, 'to_img.0.')):
        return None  # ESC-Real's to_img starts at index 1 (nearest x2 first) or is a bare DySample
    kwargs = trunk_arguments(sd)
    method, up_scale, mid = _uni_upsampler(sd, kwargs['dim'])
    if 'proj.1.weight' in sd:  # PixelUnshuffle(f) then conv 3*f*f -> dim
        f = math.isqrt(sd['proj.1.weight'].shape[1] // 3)
        scale, unshuffle = 4 // f, True
    else:
        # at x3/x4, and with conv (which never unshuffles), the option changes nothing: the default (True)
        scale, unshuffle = up_scale, up_scale >= 3 or method == 'conv'
    return dict(kwargs, upscaling_factor=scale, mid_dim=mid, upsampler=method, unshuffle_mod=unshuffle)
