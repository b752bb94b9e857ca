"""Named configurations of the paper's models (variants are data, not classes).

The presets are declared with their architecture in :mod:`.table`. ``network_g(name, scale)``
returns the BasicSR ``network_g`` dict of a variant; the option files in ``options/`` are checked
against these presets by the test-suite, so they cannot drift apart.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import torch.nn as nn

from .table import ARCHITECTURES, arch_spec, presets

PRESETS: dict[str, dict[str, Any]] = {name: {'type': spec.name, **copy.deepcopy(dict(kwargs))}
                                      for name, (spec, kwargs) in presets().items()}


def network_g(name: str, scale: int, **overrides: Any) -> dict[str, Any]:
    """BasicSR ``network_g`` dict (with ``type``) of preset ``name`` at ``scale``."""
    key = name.lower().replace('-', '_')
    if key not in PRESETS:
        raise KeyError(f'unknown preset {name!r}; choose from {sorted(PRESETS)}')
    opt = copy.deepcopy(PRESETS[key])
    scale_arg = arch_spec(opt['type']).scale_arg
    if scale_arg is not None:
        opt[scale_arg] = scale
    opt.update(overrides)
    return opt


def build(name: str, scale: int, **overrides: Any) -> nn.Module:
    """Construct preset ``name`` at ``scale`` (``overrides`` e.g. ``attn_type='sdpa'``)."""
    opt = network_g(name, scale, **overrides)
    return arch_spec(opt.pop('type')).cls(**opt)


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def preset_of(network_g: Mapping[str, Any]) -> str | None:
    """The preset that ``network_g`` (``{'type': ..., **arguments}``, e.g. read off weights) builds at
    some scale, or ``None``. Arguments left out count as the constructor's defaults; the scale
    argument and ``option_extras`` (``attn_type``, ``input_range``) do not change the variant."""
    spec = ARCHITECTURES.get(network_g.get('type'))
    if spec is None:
        return None
    ignored = {spec.scale_arg, *spec.option_extras}

    def variant(arguments: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _plain(v) for k, v in spec.arguments(arguments).items() if k not in ignored}

    given = variant(network_g)
    return next((name for name, kwargs in spec.presets.items() if variant(kwargs) == given), None)


def display_name(network_g: Mapping[str, Any]) -> str:
    """How the tools name ``network_g`` in their output: its preset's name (``ESC-light``), else its
    architecture's (``ESC`` for another configuration of ESC), else its ``type``."""
    spec = ARCHITECTURES.get(network_g.get('type'))
    if spec is None:
        return str(network_g.get('type'))
    preset = preset_of(network_g)
    return spec.preset_names[preset] if preset is not None else spec.label
