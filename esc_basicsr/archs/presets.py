"""Named configurations of the paper's models (variants are data, not classes).

The presets are declared with their architecture in :mod:`.table`. ``network_g(name, scale)``
returns the BasicSR ``network_g`` dict of a variant; the option files in ``options/`` are checked
against these presets by the test-suite, so they cannot drift apart.
"""
from __future__ import annotations

import copy
from typing import Any

import torch.nn as nn

from .table import arch_spec, presets

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
