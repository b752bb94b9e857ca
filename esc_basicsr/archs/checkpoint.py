"""Checkpoint compatibility: sub-pixel scale conversion, state_dict extraction and validation.

The authors fine-tune x3/x4 models from x2 weights: the sub-pixel output convolution (``to_img``,
``3 * r * r`` output channels ordered (rgb, row, col)) is resized from the checkpoint's scale to
the model's by bilinear interpolation of each (rgb, r, r) block. :func:`convert_subpixel_checkpoint`
is that conversion as the architecture table declares it (``ArchSpec.convert_checkpoint``), and
:class:`ConvertsSubpixelScale` applies it when a network loads a state_dict.

What a checkpoint holds is checked before anything is built from it (:func:`extract_state_dict`,
:func:`validate_state_dict`, :func:`check_fits`): a mapping of names to tensors, each tensor backed by
the bytes the file stores (no stride-0 or overlapping views declaring gigabytes in a small file), not
empty, of a real dtype, with finite values; then names, shapes and dtypes equal to those of the network
(built on the ``meta`` device first when the network is read off the weights). Every failure is a
:class:`CheckpointError` naming the tensor.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Collection, Mapping

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


class CheckpointError(ValueError):
    """A checkpoint that cannot hold weights: not a mapping of names to tensors, or a tensor with an
    impossible layout, dtype or value (the message names it)."""


# a tensor of more dimensions than this is not a layer's weight
MAX_TENSOR_DIMS = 8


def _describe(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        return f'a {str(obj.dtype).removeprefix("torch.")} tensor {list(obj.shape)}'
    name = type(obj).__name__
    return 'None' if obj is None else f'{"an" if name[0] in "aeiouAEIOU" else "a"} {name}'


def extract_state_dict(checkpoint: Mapping, param_key: str | None = None) -> dict[str, torch.Tensor]:
    """Pick the weights out of a BasicSR checkpoint: ``param_key``, else ``params_ema``, else
    ``params``, else the mapping itself (a bare state_dict). Strips a DDP ``module.`` prefix.

    Raises:
        CheckpointError: ``checkpoint`` or the entry picked is not a mapping with string keys.
        KeyError: ``param_key`` is not in the checkpoint.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'the checkpoint is {_describe(checkpoint)}, expected a dict of weights '
                              '(a state_dict, or BasicSR\'s {"params": state_dict})')
    keys = [param_key] if param_key else ['params_ema', 'params']
    source = 'the checkpoint'
    for key in keys:
        if key in checkpoint:
            checkpoint, source = checkpoint[key], f'checkpoint[{key!r}]'
            break
    else:
        if param_key:
            raise KeyError(f'checkpoint has no "{param_key}" entry (has: {sorted(map(str, checkpoint))[:8]})')
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{source} is {_describe(checkpoint)}, expected a state_dict (a dict of tensors)')
    bad = [k for k in checkpoint if not isinstance(k, str)]
    if bad:
        raise CheckpointError(f'{source} has keys that are not parameter names: {bad[:3]!r} '
                              f'({type(bad[0]).__name__}); a state_dict maps names such as "conv.weight" to tensors')
    return {(k[7:] if k.startswith('module.') else k): v for k, v in checkpoint.items()}


def tensor_problem(tensor: torch.Tensor, check_finite: bool = True) -> str | None:
    """Why ``tensor`` cannot be a weight (``None`` if it can), judged without the network: a complex or
    bool dtype, more than :data:`MAX_TENSOR_DIMS` dimensions, zero elements, more elements than its
    storage holds (a stride-0 or overlapping view, which would be materialised by loading), NaN or inf.
    Integer tensors pass (networks have integer buffers); :func:`check_fits` compares dtypes."""
    dtype = str(tensor.dtype).removeprefix('torch.')
    if tensor.is_complex() or tensor.dtype == torch.bool:
        return f'is {dtype}; weights are real numbers'
    if tensor.dim() > MAX_TENSOR_DIMS:
        return f'has {tensor.dim()} dimensions {list(tensor.shape)}'
    if tensor.dim() and tensor.numel() == 0:
        return f'is empty {list(tensor.shape)} (a zero-sized layer)'
    if tensor.device.type != 'meta':
        stored = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
        if tensor.numel() > stored:
            return (f'declares {list(tensor.shape)} = {tensor.numel()} elements but the file stores only {stored} '
                    '(a stride-0 or overlapping view)')
        if check_finite and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            nan = int(torch.isnan(tensor).sum())
            return f'holds {nan} NaN and {int(torch.isinf(tensor).sum())} inf values' if nan else \
                f'holds {int(torch.isinf(tensor).sum())} inf values'
    return None


def validate_state_dict(state_dict: Mapping[str, Any], source: str = 'the weights',
                        check_finite: bool = True) -> dict[str, torch.Tensor]:
    """Check every tensor of ``state_dict`` (:func:`tensor_problem`) before anything is built from it.

    Args:
        state_dict: names to tensors (entries that are not tensors are left out of the result).
        source: how the weights are named in the message (e.g. the file).
        check_finite: refuse NaN/inf values.

    Returns:
        The tensors of ``state_dict``.

    Raises:
        CheckpointError: only entries that are not tensors, or the first tensors that cannot be weights,
            by name (an empty mapping passes: nothing is built from it).
    """
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if not tensors and state_dict:
        found = ', '.join(f'{k}: {_describe(v)}' for k, v in list(state_dict.items())[:3])
        raise CheckpointError(f'{source}: no tensors' + (f' ({found})' if found else ''))
    problems = [(k, p) for k, v in tensors.items() if (p := tensor_problem(v, check_finite)) is not None]
    if problems:
        shown = '; '.join(f'{k!r} {p}' for k, p in problems[:3])
        more = f' (and {len(problems) - 3} more)' if len(problems) > 3 else ''
        raise CheckpointError(f'{source}: {shown}{more}')
    return tensors


def _kind(dtype: torch.dtype) -> str:
    if dtype.is_floating_point:
        return 'floating point'
    if dtype.is_complex:
        return 'complex'
    return 'bool' if dtype == torch.bool else 'integer'


def fit_problems(state_dict: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor],
                 optional: Collection[str] = ()) -> dict[str, list]:
    """How ``state_dict`` differs from a network's own ``reference`` state_dict: ``missing`` (names of
    ``reference`` not in ``optional``) and ``unexpected`` names, ``shape`` (name, given, expected) and
    ``dtype`` (name, given, expected) mismatches."""
    shape, dtype = [], []
    for k, v in state_dict.items():
        ref = reference.get(k)
        if ref is None:
            continue
        if tuple(v.shape) != tuple(ref.shape):
            shape.append((k, list(v.shape), list(ref.shape)))
        elif _kind(v.dtype) != _kind(ref.dtype):
            dtype.append((k, str(v.dtype).removeprefix('torch.'), str(ref.dtype).removeprefix('torch.')))
    return {'missing': [k for k in reference if k not in state_dict and k not in optional],
            'unexpected': [k for k in state_dict if k not in reference], 'shape': shape, 'dtype': dtype}


def describe_fit(problems: Mapping[str, list], limit: int = 3) -> str:
    """One line summing up :func:`fit_problems` (a few names of each kind, then counts)."""
    def some(items: list, fmt) -> str:
        return ', '.join(fmt(i) for i in items[:limit]) + (', ...' if len(items) > limit else '')

    parts = []
    if problems['dtype']:
        parts.append(f'{len(problems["dtype"])} of another dtype (' + some(
            problems['dtype'], lambda t: f'{t[0]!r} is {t[1]}, the network\'s is {t[2]}') + ')')
    if problems['shape']:
        parts.append(f'{len(problems["shape"])} of another shape (' + some(
            problems['shape'], lambda t: f'{t[0]!r} {t[1]} vs {t[2]}') + ')')
    if problems['missing']:
        parts.append(f'{len(problems["missing"])} missing (' + some(problems['missing'], repr) + ')')
    if problems['unexpected']:
        parts.append(f'{len(problems["unexpected"])} unexpected (' + some(problems['unexpected'], repr) + ')')
    return '; '.join(parts)


def check_fits(state_dict: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], what: str = 'the network',
               strict: bool = True, optional: Collection[str] = ()) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has the names (if ``strict``; names in
    ``optional`` may be missing, e.g. buffers the network's loader fills in), shapes and dtype kinds
    (floating point, integer, ...) of ``reference`` (a network's ``state_dict()``; meta tensors work).

    ``load_state_dict`` would copy an int64 or bool tensor into a float parameter silently and list every
    missing key of another architecture; this says what differs in one line.
    """
    problems = fit_problems(state_dict, reference, optional)
    if not strict:
        problems['missing'], problems['unexpected'] = [], []
    if any(problems.values()):
        raise CheckpointError(f'the weights do not fit {what}: {describe_fit(problems)}')

