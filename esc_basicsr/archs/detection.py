"""Architecture detection: from a state_dict alone to the network that produced it.

One function per family (``detect_esc``, ``detect_esc_fp``, ``detect_esc_real``, ``detect_esc_realm``,
``detect_elan``, ``detect_esc_lte``) reads the constructor arguments off the key layout and tensor
shapes, or returns ``None`` when the state_dict is not of its family. They are declared in the
architecture table (:mod:`.table`, ``ArchSpec.detect``); :func:`detect` asks every entry and
:func:`from_state_dict` builds and loads the one that answers. Torch only (no BasicSR).

What the weights fix and what they do not:

* ESC family: every size argument (``dim``, ``pdim``, ``kernel_size``, ``n_blocks``, ``conv_blocks``,
  ``window_size`` from the ``(heads, (2w-1)^2)`` bias table, ``num_heads``, ``exp_ratio``, ``use_ln``),
  the scale and the upsampler. Not ``attn_type`` (a backend choice, default ``auto``).
* ELAN: everything but the attention window sizes (no weights depend on them): the authors'
  ``(4, 8, 16)`` unless overridden. ``rgb_range`` comes from the mean-shift bias ``-rgb_range * mean``.

Nothing is built from weights that were not checked first: the container and every tensor
(:func:`~.checkpoint.validate_state_dict`: no stride-0 views declaring gigabytes, no empty, complex or
NaN tensors), then the detected network is built on the ``meta`` device and its names, shapes and
dtypes compared with the weights (:func:`~.checkpoint.check_fits`) before it is built for real.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch
import torch.nn as nn

from ..layers.upsamplers import UPSAMPLERS  # MetaUpsample's method order
from .checkpoint import CheckpointError, check_fits, extract_state_dict, fit_problems, subpixel_scale, \
    validate_state_dict
from .elan_arch import DIV2K_RGB_MEAN

StateDict = Mapping[str, torch.Tensor]
ELAN_WINDOW_SIZES = (4, 8, 16)


class UnknownArchitectureError(ValueError):
    """A state_dict that none of the architectures of :data:`~.table.ARCHITECTURES` recognises."""


class LayoutError(ValueError):
    """A state_dict with a family's signature keys but a layout that family cannot have."""


# ------------------------------------------------------------------------------------------ helpers

def _indices(sd: StateDict, pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (a regex with one group) over the keys."""
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.fullmatch(k))})


def _count(sd: StateDict, pattern: str, what: str) -> int:
    """Number of consecutive indices ``0..n-1`` captured by ``pattern``; raises on gaps."""
    found = _indices(sd, pattern)
    if not found or found != list(range(len(found))):
        raise LayoutError(f'{what}: expected indices 0..n-1, found {found[:12]}')
    return len(found)


def expansion_ratio(hidden: int, dim: int) -> float:
    """The shortest ratio ``r`` with ``int(dim * r) == hidden`` (ConvFFN's hidden width rule)."""
    for digits in range(1, 8):
        r = round(hidden / dim, digits)
        if int(dim * r) == hidden:
            return r
    raise LayoutError(f'no expansion ratio gives {hidden} hidden channels from {dim}')


def _window(bias_table: torch.Tensor) -> tuple[int, int]:
    """``(num_heads, window_size)`` of a relative position bias ``(heads, (2w-1)^2)``."""
    heads, n = bias_table.shape
    side = math.isqrt(n)
    if side * side != n or side % 2 == 0:
        raise LayoutError(f'relative_position_bias {tuple(bias_table.shape)} is not (heads, (2w-1)^2)')
    return heads, (side + 1) // 2


def esc_trunk(sd: StateDict, prefix: str = '') -> dict[str, Any]:
    """Constructor arguments of an ESC feature trunk (``proj``/``blocks``/``last``) under ``prefix``:
    ``dim, pdim, kernel_size, n_blocks, conv_blocks, window_size, num_heads, exp_ratio``."""
    p = re.escape(prefix)
    dim = sd[f'{prefix}last.weight'].shape[0]
    kernel = sd.get(f'{prefix}plk_filter', sd.get(f'{prefix}lk_spatial'))
    if kernel is None:
        raise LayoutError('no shared large kernel (plk_filter / lk_spatial)')
    n_blocks = _count(sd, rf'{p}blocks\.(\d+)\.conv_out\.weight', 'blocks')
    conv_blocks = _count(sd, rf'{p}blocks\.0\.pconvs\.(\d+)\.aggr\.weight', 'ConvAttn modules')
    heads, window = _window(sd[f'{prefix}blocks.0.attn.relative_position_bias'])
    hidden = sd[f'{prefix}blocks.0.convffns.0.proj.weight'].shape[0]
    return dict(dim=dim, pdim=kernel.shape[0], kernel_size=kernel.shape[-1], n_blocks=n_blocks,
                conv_blocks=conv_blocks, window_size=window, num_heads=heads,
                exp_ratio=expansion_ratio(hidden, dim))


def _has(sd: StateDict, *keys: str) -> bool:
    return all(k in sd for k in keys)


def _has_prefix(sd: StateDict, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in sd)


def _is_esc_trunk(sd: StateDict, prefix: str = '') -> bool:
    return _has(sd, f'{prefix}last.weight', f'{prefix}blocks.0.attn.relative_position_bias',
                f'{prefix}blocks.0.pconvs.0.aggr.weight', f'{prefix}blocks.0.convffns.0.proj.weight')


# ------------------------------------------------------------------------------------ one per family

def detect_esc(sd: StateDict) -> dict[str, Any] | None:
    """ESC / ESC-light / ESC-XL (any size): shared ``plk_filter``, sub-pixel ``to_img`` (3*r*r outputs)."""
    if not (_is_esc_trunk(sd) and _has(sd, 'plk_filter', 'proj.weight', 'to_img.weight')) \
            or _has_prefix(sd, 'skip.') or 'lk_spatial' in sd:
        return None
    kwargs = esc_trunk(sd)
    kwargs['upscaling_factor'] = subpixel_scale(sd['to_img.weight'].shape[0])
    kwargs['use_ln'] = 'blocks.0.lns.0.weight' in sd
    return kwargs


def detect_esc_fp(sd: StateDict) -> dict[str, Any] | None:
    """ESC-FP: decomposed large kernel (``lk_channel`` + ``lk_spatial``), final ``ln_last``."""
    if not (_is_esc_trunk(sd) and _has(sd, 'lk_channel', 'lk_spatial', 'ln_last.weight', 'to_img.weight')):
        return None
    kwargs = esc_trunk(sd)
    kwargs['upscaling_factor'] = subpixel_scale(sd['to_img.weight'].shape[0])
    return kwargs


def detect_esc_real(sd: StateDict) -> dict[str, Any] | None:
    """ESC-Real x4: image ``skip`` branch and the released nearest+conv ``to_img.1/4/6/8`` or DySample."""
    if not (_is_esc_trunk(sd) and _has(sd, 'plk_filter', 'proj.weight', 'skip.0.weight')):
        return None
    if _has(sd, 'to_img.1.weight', 'to_img.4.weight', 'to_img.6.weight', 'to_img.8.weight'):
        use_dysample = False
    elif _has(sd, 'to_img.offset.weight', 'to_img.end_conv.weight'):
        use_dysample = True
    else:
        return None
    return dict(esc_trunk(sd), upscaling_factor=4, use_dysample=use_dysample)


def _uni_upsampler(sd: StateDict, dim: int) -> tuple[str, int, int]:
    """``(method, upsampler scale, mid_dim)`` of an ESCRealM ``to_img`` (UniUpsample) from its weights.

    ``MetaUpsample`` (``[version, method, scale, dim, out, mid, group]``, uint8) is authoritative where
    present; the conv layout alone cannot tell ``nearest+conv`` x2 from x3 (same keys) and then
    assumes a power of two, as the authors' training configurations use.
    """
    meta = sd.get('to_img.MetaUpsample')
    convs = {i: sd[f'to_img.{i}.weight'] for i in _indices(sd, r'to_img\.(\d+)\.weight')}
    dysample = _indices(sd, r'to_img\.(\d+)\.offset\.weight')
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
    if not (_is_esc_trunk(sd) and 'plk_filter' in sd and _has_prefix(sd, 'skip.')):
        return None
    if not ('to_img.MetaUpsample' in sd or _has_prefix(sd, 'to_img.0.')):
        return None  # ESC-Real's to_img starts at index 1 (nearest x2 first) or is a bare DySample
    kwargs = esc_trunk(sd)
    method, up_scale, mid = _uni_upsampler(sd, kwargs['dim'])
    if 'proj.1.weight' in sd:  # PixelUnshuffle(f) then conv 3*f*f -> dim
        f = math.isqrt(sd['proj.1.weight'].shape[1] // 3)
        scale, unshuffle = 4 // f, True
    else:
        scale, unshuffle = up_scale, up_scale >= 3  # at x3/x4 the option changes nothing: keep the default
    return dict(kwargs, upscaling_factor=scale, mid_dim=mid, upsampler=method, unshuffle_mod=unshuffle)


def _rgb_range(bias: torch.Tensor) -> float:
    """``rgb_range`` from ELAN's ``sub_mean.bias`` = ``-rgb_range * DIV2K mean``."""
    values = (-bias.double() / torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)).tolist()
    rng = float(sum(values) / len(values))
    nice = round(rng, 4)
    return float(int(nice)) if nice == int(nice) else nice


def detect_elan(sd: StateDict, window_sizes: tuple[int, ...] = ELAN_WINDOW_SIZES) -> dict[str, Any] | None:
    """ELAN / ELAN-light (deployed, BatchNorm-folded checkpoints too). ``window_sizes`` are not in the
    weights: the authors' ``(4, 8, 16)`` unless given."""
    if not _has(sd, 'sub_mean.bias', 'add_mean.bias', 'head.0.weight', 'tail.0.weight',
                'body.0.modules_gmsa.gmsa_0.project_inp.0.weight'):
        return None
    colors, c_elan = sd['head.0.weight'].shape[1], sd['head.0.weight'].shape[0]
    n_blocks = _count(sd, r'body\.(\d+)\.modules_lfe\.lfe_0\.conv0\.shift_conv\.weight', 'ELAB blocks')
    depth = _count(sd, r'body\.0\.modules_gmsa\.gmsa_(\d+)\.project_out\.weight', 'GMSA modules of block 0')
    # only gmsa_0 computes attention (2C query/key + value channels); the shared ones project C values
    for j in range(depth):
        inner = sd[f'body.0.modules_gmsa.gmsa_{j}.project_inp.0.weight'].shape[0]
        if inner != (2 * c_elan if j == 0 else c_elan):
            raise LayoutError(f'ELAN gmsa_{j} projects to {inner} channels, expected '
                              f'{2 * c_elan if j == 0 else c_elan}')
    r_expand = sd['body.0.modules_lfe.lfe_0.conv0.shift_conv.conv1x1.weight'].shape[0] // c_elan
    return dict(scale=subpixel_scale(sd['tail.0.weight'].shape[0], colors), rgb_range=_rgb_range(sd['sub_mean.bias']),
                colors=colors, m_elan=n_blocks * depth, c_elan=c_elan, n_share=depth - 1, r_expand=r_expand,
                act_type='relu', window_sizes=list(window_sizes))


def detect_esc_lte(sd: StateDict) -> dict[str, Any] | None:
    """ESC-LTE (arbitrary scale): ESC trunk under ``encoder.``, LTE decoder ``coef/freq/phase/imnet``."""
    if not (_is_esc_trunk(sd, 'encoder.') and _has(sd, 'encoder.plk_filter', 'coef.weight', 'freq.weight',
                                                       'phase.weight')):
        return None
    layers = _indices(sd, r'imnet\.layers\.(\d+)\.weight')
    if not layers:
        return None
    kwargs = esc_trunk(sd, 'encoder.')
    kwargs['use_ln'] = 'encoder.blocks.0.lns.0.weight' in sd
    kwargs['hidden_dim'] = sd['coef.weight'].shape[0]
    kwargs['imnet_hidden'] = [sd[f'imnet.layers.{i}.weight'].shape[0] for i in layers[:-1]]
    return kwargs


# ------------------------------------------------------------------------------------- entry points

def _weights(checkpoint: Mapping[str, Any], param_key: str | None = None) -> dict[str, torch.Tensor]:
    """The checked tensors of a checkpoint (``params_ema``/``params``/bare, ``module.`` prefix removed;
    :func:`~.checkpoint.validate_state_dict`). Raises :class:`~.checkpoint.CheckpointError`."""
    return validate_state_dict(extract_state_dict(checkpoint, param_key))


def _meta_state_dict(name: str, kwargs: Mapping[str, Any],
                     keys: set[str] | None = None) -> tuple[dict[str, torch.Tensor], set[str]]:
    """State_dict of ``name(**kwargs)`` built on the ``meta`` device (shapes and dtypes, no memory) and
    the names of its buffers; the deployed (folded) form's if its names are ``keys`` and the training
    form's are not."""
    from .table import arch_spec

    spec = arch_spec(name)
    with torch.device('meta'):
        model = spec.cls(**kwargs)
        if keys is not None and spec.deploy is not None and set(model.state_dict()) != keys:
            folded = spec.deploy(spec.cls(**kwargs))
            if set(folded.state_dict()) == keys:
                model = folded
    return model.state_dict(), {n for n, _ in model.named_buffers()}


def _verified(name: str, kwargs: dict[str, Any], sd: StateDict) -> dict[str, Any]:
    """``kwargs`` if ``name(**kwargs)`` has exactly the names and shapes of ``sd`` (checked on the meta
    device). Raises :class:`LayoutError` for other names/shapes (not this network) and
    :class:`~.checkpoint.CheckpointError` for the right layout with a tensor of another dtype (int64, bool)."""
    try:
        reference, buffers = _meta_state_dict(name, kwargs, set(sd))
    except (TypeError, ValueError, RuntimeError, AssertionError, OverflowError) as exc:
        raise LayoutError(f'cannot be built from the detected arguments ({type(exc).__name__}: {exc})') from None
    problems = fit_problems(sd, reference, buffers)
    if problems['missing'] or problems['unexpected'] or problems['shape']:
        from .checkpoint import describe_fit

        problems['dtype'] = []
        raise LayoutError(f'the detected {name} does not fit the weights: {describe_fit(problems)}')
    check_fits(sd, reference, name, optional=buffers)
    return kwargs


def detect(checkpoint: Mapping[str, Any], param_key: str | None = None) -> tuple[str, dict[str, Any]]:
    """The architecture and constructor arguments that produced a state_dict.

    Args:
        checkpoint: a state_dict, or a BasicSR checkpoint (``params_ema``, else ``params``), with or
            without a DDP ``module.`` prefix.
        param_key: the checkpoint entry holding the weights (default: ``params_ema``, ``params``).

    Returns:
        ``(name, kwargs)``: the :data:`~.table.ARCHITECTURES` name (``network_g.type``) and its
        constructor arguments (``attn_type`` left at its default).

    Raises:
        CheckpointError: the checkpoint is not a mapping of names to tensors, or a tensor cannot be a
            weight (:func:`~.checkpoint.validate_state_dict`, and a dtype the detected network cannot hold).
        UnknownArchitectureError: no architecture recognises the state_dict; the message lists the
            architectures tried and what, if anything, partly matched.
    """
    from .table import ARCHITECTURES

    sd = _weights(checkpoint, param_key)
    partial: list[str] = []
    for name, spec in ARCHITECTURES.items():
        if spec.detect is None:
            continue
        try:
            kwargs = spec.detect(sd)
            if kwargs is not None:
                return name, _verified(name, kwargs, sd)
        except CheckpointError:  # this network's layout, but a tensor it cannot hold (int64, bool)
            raise
        except (LayoutError, ValueError, KeyError, IndexError, TypeError) as exc:  # its signature keys, but an
            # impossible layout (0-dim tensors where layers are, sizes that disagree with the other tensors)
            why = ('a tensor has fewer dimensions than the layer it stands for' if isinstance(exc, IndexError)
                   else f'{type(exc).__name__}: {exc}' if isinstance(exc, TypeError) else str(exc))
            partial.append(f'{name}: {why[:150]}')
    known = ', '.join(n for n, s in ARCHITECTURES.items() if s.detect is not None)
    keys = ', '.join(list(sd)[:6]) + (', ...' if len(sd) > 6 else '')
    detail = ('; partly recognised as ' + '; '.join(partial[:3]) + ('; ...' if len(partial) > 3 else '')) \
        if partial else ''
    raise UnknownArchitectureError(f'the weights ({len(sd)} tensors: {keys or "none"}) are not of an architecture '
                                   f'esc_basicsr recognises ({known}){detail}')


def build_from_state_dict(name: str, kwargs: Mapping[str, Any], sd: StateDict) -> nn.Module:
    """Construct ``name(**kwargs)`` and load ``sd`` strictly; a deployed (folded) state_dict whose keys
    only the folded form has (ELAN without BatchNorm) is loaded into a folded model.

    ``sd`` is checked first (:func:`~.checkpoint.validate_state_dict`), and compared with the network
    built on the ``meta`` device: weights that do not fit raise :class:`~.checkpoint.CheckpointError`
    before any memory is allocated for the network.
    """
    from .table import arch_spec

    sd = validate_state_dict(sd)
    reference, buffers = _meta_state_dict(name, kwargs, set(sd))
    check_fits(sd, reference, f'the detected {name}', optional=buffers)
    spec = arch_spec(name)
    model = spec.cls(**kwargs)
    if spec.deploy is not None and set(model.state_dict()) != set(sd):
        folded = spec.deploy(spec.cls(**kwargs))
        if set(folded.state_dict()) == set(sd):
            model = folded
    model.load_state_dict(sd, strict=True)
    return model.eval()


def from_state_dict(checkpoint: Mapping[str, Any], param_key: str | None = None, **overrides: Any) -> nn.Module:
    """The network of a checkpoint, built from its weights alone, weights loaded strictly, in eval mode.

    Args:
        checkpoint: as :func:`detect` (``params_ema``/``params``/bare, ``module.`` prefix or not).
        param_key: the checkpoint entry holding the weights.
        **overrides: constructor arguments the weights do not fix, e.g. ``attn_type='sdpa'``,
            ELAN's ``window_sizes`` or ``input_range=1.0`` (take [0, 1] images).

    Example:
        >>> model = from_state_dict(torch.load('ESC_x2.pth', weights_only=True))
        >>> sr = model(lr)  # (1, 3, H, W) in [0, 1] -> (1, 3, 2H, 2W)
    """
    sd = _weights(checkpoint, param_key)
    name, kwargs = detect(sd)
    return build_from_state_dict(name, {**kwargs, **overrides}, sd)


def weights_scale(name: str, kwargs: Mapping[str, Any]) -> int | None:
    """The upscaling factor of detected weights (``None`` for arbitrary-scale networks)."""
    from .table import arch_spec

    arg = arch_spec(name).scale_arg
    return None if arg is None else kwargs.get(arg)
