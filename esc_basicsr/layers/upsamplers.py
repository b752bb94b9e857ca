"""The unified upsampler of ESCRealM (MoSR v2's ``UniUpsample``): five ways from features to an image.

One ``nn.Sequential`` whose layout, and so whose checkpoint keys, depend on the method and scale,
plus a small ``uint8`` buffer ``MetaUpsample`` recording how it was built (released ESCRealM
checkpoints store it, so it is part of the ``state_dict``). Any architecture with a
``(B, in_dim, H, W)`` feature map can use it as its ``to_img``.

Layouts (``s`` = scale; Sequential indices are the checkpoint keys):

========================  ===============================================================================
``conv`` (or ``s == 1``)  conv3x3 in -> out
``pixelshuffledirect``    conv3x3 in -> out*s^2, PixelShuffle(s)
``pixelshuffle``          conv3x3 in -> mid, LeakyReLU(0.01), per factor 2 [conv3x3 mid -> 4*mid,
                          PixelShuffle(2)] (s = 3: one [conv3x3 mid -> 9*mid, PixelShuffle(3)]),
                          conv3x3 mid -> out
``nearest+conv``          per factor 2 [conv3x3 in -> in, nearest x2, LeakyReLU(0.2)], conv3x3 in -> in,
                          LeakyReLU(0.2) (s = 3: [conv3x3, nearest x3, LeakyReLU(0.2), conv3x3,
                          LeakyReLU(0.2)]), conv3x3 in -> out
``dysample``              (if mid != in: conv3x3 in -> mid, LeakyReLU(0.01)), DySample(mid -> out, s, group)
========================  ===============================================================================
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn as nn

from .dysample import DySample

# the order defines the method index stored in ``MetaUpsample``
UPSAMPLERS = ('conv', 'pixelshuffledirect', 'pixelshuffle', 'nearest+conv', 'dysample')
# first field of ``MetaUpsample``: the layout version of the authors' (MoSR v2) upsampler
META_VERSION = 2
logger = logging.getLogger('basicsr')


def supports_scale(upsample: str, scale: int) -> bool:
    """Whether :class:`UniUpsample` builds ``upsample`` at integer ``scale``.

    ``conv`` only at 1; ``pixelshuffle`` and ``nearest+conv`` at 1, 3 and powers of two; the
    others at any scale >= 1.
    """
    if scale < 1:
        return False
    if upsample == 'conv':
        return scale == 1
    if upsample in ('pixelshuffle', 'nearest+conv'):
        return _is_power_of_two(scale) or scale == 3
    return True


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


class UniUpsample(nn.Sequential):
    """Features ``(B, in_dim, H, W)`` -> image ``(B, out_dim, s*H, s*W)`` by one of :data:`UPSAMPLERS`.

    Args:
        upsample: ``conv`` | ``pixelshuffledirect`` | ``pixelshuffle`` | ``nearest+conv`` | ``dysample``.
            At scale 1 every method is a single conv3x3 (the method is still recorded).
        scale: integer upscaling factor s >= 1 (``pixelshuffle``, ``nearest+conv``: 1, 3 or a power
            of two; ``conv``: 1 only).
        in_dim: input feature channels.
        out_dim: output channels. Default: 3.
        mid_dim: channels between the layers of ``pixelshuffle``, and of ``dysample`` (where a
            conv3x3 ``in_dim -> mid_dim`` is added when they differ; a multiple of ``group``).
            Default: 48.
        group: DySample channel groups. Default: 4.

    Buffers:
        ``MetaUpsample``: ``uint8`` ``[2, method index, scale, in_dim, out_dim, mid_dim, group]``
        (each field modulo 256). Loading keeps the module's own value: a checkpoint without the
        buffer, or of another layout version, loads with ``strict=True``; one describing another
        upsampler is logged (logger ``basicsr``).
    """

    def __init__(self, upsample: str, scale: int, in_dim: int, out_dim: int = 3, mid_dim: int = 48,
                 group: int = 4) -> None:
        if upsample not in UPSAMPLERS:
            raise ValueError(f'upsampler must be one of {UPSAMPLERS}, got {upsample!r}')
        if int(scale) != scale or scale < 1:
            raise ValueError(f'upsampler scale must be a positive integer, got {scale}')
        scale = int(scale)
        if not supports_scale(upsample, scale):
            if upsample == 'conv':
                raise ValueError(f'upsampler "conv" does not upsample: it needs scale 1, got {scale}')
            raise ValueError(f'upsampler {upsample!r} supports scales 1, 3 and powers of two, not {scale}')
        m: list[nn.Module] = []
        if scale == 1 or upsample == 'conv':
            m.append(nn.Conv2d(in_dim, out_dim, 3, 1, 1))
        elif upsample == 'pixelshuffledirect':
            m += [nn.Conv2d(in_dim, out_dim * scale ** 2, 3, 1, 1), nn.PixelShuffle(scale)]
        elif upsample == 'pixelshuffle':
            m += [nn.Conv2d(in_dim, mid_dim, 3, 1, 1), nn.LeakyReLU(inplace=True)]
            if _is_power_of_two(scale):
                for _ in range(int(math.log2(scale))):
                    m += [nn.Conv2d(mid_dim, 4 * mid_dim, 3, 1, 1), nn.PixelShuffle(2)]
            else:  # 3
                m += [nn.Conv2d(mid_dim, 9 * mid_dim, 3, 1, 1), nn.PixelShuffle(3)]
            m.append(nn.Conv2d(mid_dim, out_dim, 3, 1, 1))
        elif upsample == 'nearest+conv':
            if _is_power_of_two(scale):
                for _ in range(int(math.log2(scale))):
                    m += [nn.Conv2d(in_dim, in_dim, 3, 1, 1), nn.Upsample(scale_factor=2),
                          nn.LeakyReLU(negative_slope=0.2, inplace=True)]
                m += [nn.Conv2d(in_dim, in_dim, 3, 1, 1), nn.LeakyReLU(negative_slope=0.2, inplace=True)]
            else:  # 3
                m += [nn.Conv2d(in_dim, in_dim, 3, 1, 1), nn.Upsample(scale_factor=3),
                      nn.LeakyReLU(negative_slope=0.2, inplace=True),
                      nn.Conv2d(in_dim, in_dim, 3, 1, 1), nn.LeakyReLU(negative_slope=0.2, inplace=True)]
            m.append(nn.Conv2d(in_dim, out_dim, 3, 1, 1))
        else:  # dysample
            if mid_dim != in_dim:
                m += [nn.Conv2d(in_dim, mid_dim, 3, 1, 1), nn.LeakyReLU(inplace=True)]
            m.append(DySample(mid_dim, out_dim, scale, group))
        super().__init__(*m)
        self.upsample, self.scale = upsample, scale
        self.in_dim, self.out_dim, self.mid_dim, self.group = in_dim, out_dim, mid_dim, group
        self.register_buffer('MetaUpsample', self.meta())

    def meta(self) -> torch.Tensor:
        """The ``MetaUpsample`` value describing this module, ``(7,)`` uint8."""
        fields = [META_VERSION, UPSAMPLERS.index(self.upsample), self.scale, self.in_dim, self.out_dim,
                  self.mid_dim, self.group]
        return torch.tensor([v % 256 for v in fields], dtype=torch.uint8)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # The buffer describes the module, which the constructor arguments define: like the authors'
        # loader, keep this module's value (a checkpoint without it, or of another layout version,
        # loads strictly). A checkpoint describing another upsampler is logged; its weights will
        # usually not fit anyway (size mismatches are reported by PyTorch).
        key = prefix + 'MetaUpsample'
        stored = state_dict.get(key)
        own = self.meta()
        if stored is not None and (stored.numel() != own.numel()
                                   or not torch.equal(stored.flatten()[1:].to('cpu', torch.uint8), own[1:])):
            logger.warning(f'{key}: the checkpoint was saved from the upsampler {describe_meta(stored)}; this model '
                           f'is {describe_meta(own)} (check upsampler, upscaling_factor, dim, mid_dim).')
        state_dict[key] = own.to(self.MetaUpsample.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return f'upsample={self.upsample!r}, scale={self.scale}, in_dim={self.in_dim}, out_dim={self.out_dim}, ' \
               f'mid_dim={self.mid_dim}'


def describe_meta(meta: torch.Tensor) -> str:
    """Readable form of a ``MetaUpsample`` tensor, e.g. ``'pixelshuffle' x4 (64 -> 3, mid 48)``."""
    v = [int(x) for x in meta.flatten().tolist()]
    if len(v) != 7:
        return f'MetaUpsample {v}'
    method = UPSAMPLERS[v[1]] if v[1] < len(UPSAMPLERS) else f'method #{v[1]}'
    return f'{method!r} x{v[2]} ({v[3]} -> {v[4]}, mid {v[5]}, groups {v[6]})'
