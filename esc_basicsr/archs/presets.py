"""Named configurations of the paper's models (variants are data, not classes).

``network_g(name, scale)`` returns the BasicSR ``network_g`` dict of a variant; the option files in
``options/`` are checked against these presets by the test-suite, so they cannot drift apart.
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

_ESC = dict(type='ESC', dim=64, pdim=16, kernel_size=13, n_blocks=5, conv_blocks=5, window_size=32, num_heads=4,
            exp_ratio=1.25)

PRESETS: dict[str, dict[str, Any]] = {
    'esc': dict(_ESC),
    'esc_light': dict(_ESC, n_blocks=3),
    'esc_xl': dict(_ESC, dim=192, pdim=48, n_blocks=8, window_size=48, num_heads=12, use_ln=True),
    'esc_fp': dict(_ESC, type='ESCFP', dim=48, num_heads=3),
    'esc_real': dict(_ESC, type='ESCReal', n_blocks=10, exp_ratio=2),
    'elan_light': dict(type='ELAN', colors=3, m_elan=24, c_elan=60, n_share=1, r_expand=2, act_type='relu',
                       window_sizes=[4, 8, 16], rgb_range=255),
    'elan': dict(type='ELAN', colors=3, m_elan=36, c_elan=180, n_share=0, r_expand=2, act_type='relu',
                 window_sizes=[4, 8, 16], rgb_range=255),
}

# the constructor argument that holds the scale, per architecture
SCALE_KEY = {'ESC': 'upscaling_factor', 'ESCFP': 'upscaling_factor', 'ESCReal': 'upscaling_factor', 'ELAN': 'scale'}


def network_g(name: str, scale: int, **overrides: Any) -> dict[str, Any]:
    """BasicSR ``network_g`` dict (with ``type``) of preset ``name`` at ``scale``."""
    key = name.lower().replace('-', '_')
    if key not in PRESETS:
        raise KeyError(f'unknown preset {name!r}; choose from {sorted(PRESETS)}')
    opt = dict(PRESETS[key])
    opt[SCALE_KEY[opt['type']]] = scale
    opt.update(overrides)
    return opt


def build(name: str, scale: int, **overrides: Any) -> nn.Module:
    """Construct preset ``name`` at ``scale`` (``overrides`` e.g. ``attn_type='sdpa'``)."""
    from ..registration import architectures
    opt = network_g(name, scale, **overrides)
    return architectures()[opt.pop('type')](**opt)
