"""Architecture detection: from a state_dict alone to the network that produced it.

Each architecture's detector (``ArchSpec.detect`` in :mod:`.table`) sits beside its network
(``detect_esc`` in ``esc_arch``, ``detect_elan`` in ``elan_arch``, ...): it reads the constructor
arguments off the key layout and tensor shapes (helpers in :mod:`.state_dict_layout`), or returns
``None`` when the state_dict is not of its family. :func:`detect` asks every row of the table and
:func:`from_state_dict` builds and loads the one that answers. Torch only (no BasicSR).

What the weights fix and what they do not (each detector's docstring says it for its network):

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

from typing import Any, Mapping

import torch
import torch.nn as nn

from .checkpoint import (CheckpointError, check_fits, describe_fit, extract_state_dict, fit_problems,
                         validate_state_dict)
from .state_dict_layout import LayoutError, StateDict
from .table import ARCHITECTURES, arch_spec


class UnknownArchitectureError(ValueError):
    """A state_dict that none of the architectures of :data:`~.table.ARCHITECTURES` recognises."""


def _weights(checkpoint: Mapping[str, Any], param_key: str | None = None) -> dict[str, torch.Tensor]:
    """The checked tensors of a checkpoint (``params_ema``/``params``/bare, ``module.`` prefix removed;
    :func:`~.checkpoint.validate_state_dict`). Raises :class:`~.checkpoint.CheckpointError`."""
    return validate_state_dict(extract_state_dict(checkpoint, param_key))


def _meta_state_dict(name: str, kwargs: Mapping[str, Any],
                     keys: set[str] | None = None) -> tuple[dict[str, torch.Tensor], set[str]]:
    """State_dict of ``name(**kwargs)`` built on the ``meta`` device (shapes and dtypes, no memory) and
    the names of its buffers; the deployed (folded) form's if its names are ``keys`` and the training
    form's are not."""
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
    arg = arch_spec(name).scale_arg
    return None if arg is None else kwargs.get(arg)
