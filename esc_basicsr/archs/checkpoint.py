"""Checkpoint compatibility: sub-pixel scale conversion and state_dict extraction.

The authors fine-tune x3/x4 models from x2 weights: the sub-pixel output convolution (``to_img``,
``3 * r * r`` output channels ordered (rgb, row, col)) is resized from the checkpoint's scale to
the model's by bilinear interpolation of each (rgb, r, r) block. :func:`convert_subpixel_checkpoint`
is that conversion as the architecture table declares it (``ArchSpec.convert_checkpoint``), and
:class:`ConvertsSubpixelScale` applies it when a network loads a state_dict.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from ..layers.lte import is_lte_state_dict

logger = logging.getLogger('basicsr')


def subpixel_scale(out_channels: int, colors: int = 3) -> int:
    """Scale ``r`` of a sub-pixel conv with ``colors * r * r`` outputs; raises if not square."""
    r = math.isqrt(out_channels // colors)
    if colors * r * r != out_channels:
        raise ValueError(f'{out_channels} output channels is not a {colors}*r*r sub-pixel layout')
    return r


def resize_subpixel(tensor: torch.Tensor, scale_in: int, scale_out: int, colors: int = 3) -> torch.Tensor:
    """Resize a sub-pixel conv weight ``(colors*r*r, Cin, kh, kw)`` or bias ``(colors*r*r,)``."""
    rest = tensor.shape[1:]
    grid = tensor.reshape(colors, scale_in, scale_in, -1).permute(3, 0, 1, 2)  # (Cin*kh*kw, colors, r, r)
    grid = F.interpolate(grid.float(), size=(scale_out, scale_out), mode='bilinear', align_corners=False)
    return grid.permute(1, 2, 3, 0).reshape(colors * scale_out * scale_out, *rest).to(tensor.dtype)


def convert_subpixel_scale(state_dict: Mapping[str, torch.Tensor], scale: int, prefix: str = 'to_img',
                           colors: int = 3) -> dict[str, torch.Tensor]:
    """Return a copy of ``state_dict`` whose ``{prefix}.weight/bias`` are resized to ``scale``.

    A state_dict already at ``scale`` (or without the layer) is returned unchanged (as a dict).
    """
    state_dict = dict(state_dict)
    weight = state_dict.get(f'{prefix}.weight')
    if weight is None:
        return state_dict
    scale_in = subpixel_scale(weight.shape[0], colors)
    if scale_in == scale:
        return state_dict
    # visible by default: the resized layer initialises fine-tuning, it is not a trained x{scale} model
    logger.warning(f'Converting the sub-pixel output layer "{prefix}" from x{scale_in} to x{scale} '
                   '(bilinear resize of the checkpoint weights: an initialisation for fine-tuning, not a '
                   f'trained x{scale} model).')
    state_dict[f'{prefix}.weight'] = resize_subpixel(weight, scale_in, scale, colors)
    if f'{prefix}.bias' in state_dict:
        state_dict[f'{prefix}.bias'] = resize_subpixel(state_dict[f'{prefix}.bias'], scale_in, scale, colors)
    return state_dict


def convert_subpixel_checkpoint(state_dict: Mapping[str, torch.Tensor],
                                kwargs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``state_dict`` of a network with a sub-pixel ``to_img`` made loadable at ``kwargs['upscaling_factor']``
    (:func:`convert_subpixel_scale`; the table's ``convert_checkpoint`` of ESC and ESC-FP)."""
    return convert_subpixel_scale(state_dict, kwargs['upscaling_factor'])


class ConvertsSubpixelScale:
    """Mixin for networks with a sub-pixel ``to_img`` head: ``load_state_dict`` first converts a
    checkpoint of another scale (:func:`convert_subpixel_checkpoint`, logged). Needs ``upscaling_factor``."""

    upscaling_factor: int

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        if is_lte_state_dict(state_dict):
            raise ValueError(f'{type(self).__name__} got an arbitrary-scale (ESC+LTE) checkpoint ("encoder.*", '
                             '"coef.*", "imnet.*" keys): load it into ESCLTE')
        state_dict = convert_subpixel_checkpoint(state_dict, {'upscaling_factor': self.upscaling_factor})
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def extract_state_dict(checkpoint: Mapping, param_key: str | None = None) -> dict[str, torch.Tensor]:
    """Pick the weights out of a BasicSR checkpoint: ``param_key``, else ``params_ema``, else
    ``params``, else the mapping itself (a bare state_dict). Strips a DDP ``module.`` prefix."""
    keys = [param_key] if param_key else ['params_ema', 'params']
    for key in keys:
        if key in checkpoint:
            checkpoint = checkpoint[key]
            break
    else:
        if param_key:
            raise KeyError(f'checkpoint has no "{param_key}" entry (has: {sorted(checkpoint)[:8]})')
    return {(k[7:] if k.startswith('module.') else k): v for k, v in checkpoint.items()}

