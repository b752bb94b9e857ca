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
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from .checkpoint import extract_state_dict
from .state_dict_layout import LayoutError, StateDict
from .table import ARCHITECTURES, arch_spec


class UnknownArchitectureError(ValueError):
    """A state_dict that none of the architectures of :data:`~.table.ARCHITECTURES` recognises."""


def _weights(checkpoint: Mapping[str, Any], param_key: str | None = None) -> dict[str, torch.Tensor]:
    """The state_dict of a checkpoint (``params_ema``/``params``/bare, ``module.`` prefix removed)."""
    sd = extract_state_dict(checkpoint, param_key)
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


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
        except (LayoutError, ValueError, KeyError) as exc:  # its signature keys, but an impossible layout
            partial.append(f'{name}: {exc}')
            continue
        if kwargs is not None:
            return name, kwargs
    known = ', '.join(n for n, s in ARCHITECTURES.items() if s.detect is not None)
    keys = ', '.join(list(sd)[:6]) + (', ...' if len(sd) > 6 else '')
    detail = ('; partly recognised as ' + '; '.join(partial)) if partial else ''
    raise UnknownArchitectureError(f'the weights ({len(sd)} tensors: {keys or "none"}) are not of an architecture '
                                   f'esc_basicsr recognises ({known}){detail}')


def build_from_state_dict(name: str, kwargs: Mapping[str, Any], sd: StateDict) -> nn.Module:
    """Construct ``name(**kwargs)`` and load ``sd`` strictly; a deployed (folded) state_dict whose keys
    only the folded form has (ELAN without BatchNorm) is loaded into a folded model."""
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
