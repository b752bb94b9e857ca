"""The table of architectures: each network of esc_basicsr described once.

Registration into BasicSR (:mod:`esc_basicsr.integration.registration`), the presets
(:mod:`.presets`), deployment folding (:mod:`.deploy`), checkpoint loading and the command-line
tools' choices all derive from :data:`ARCHITECTURES`. Adding a network means writing its
``*_arch.py`` and one :class:`ArchSpec` entry here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch.nn as nn

from .deploy import fold_geometric_ensemble, geometric_ensemble_folded
from .detection import detect_elan, detect_esc, detect_esc_fp, detect_esc_lte, detect_esc_real, detect_esc_realm
from .elan_arch import ELAN, batchnorm_folded, fold_batchnorm
from .esc_arch import ESC
from .esc_fp_arch import ESCFP
from .esc_lte_arch import ESCLTE, esc_lte_folded, fold_esc_lte
from .esc_real_arch import ESCReal
from .esc_realm_arch import ESCRealM


@dataclass(frozen=True)
class ArchSpec:
    """How esc_basicsr knows one architecture.

    Attributes:
        cls: the ``nn.Module`` class; its name is the BasicSR registry name (``network_g.type``).
        scale_arg: constructor argument holding the upscaling factor (``None``: no fixed scale).
        presets: preset name -> constructor arguments without the scale (the paper's variants).
        scales: the scales the architecture supports.
        deploy: in-place folding of training-time re-parameterisations (``None``: nothing to fold).
        is_deployed: whether ``deploy`` was already applied to a model.
        option_extras: ``network_g`` keys an option file may add to a preset (not part of the variant).
        summary: one line for the documentation.
        detect: state_dict -> constructor arguments (scale included), or ``None`` if the weights are
            not of this architecture (:mod:`.detection`; ``None``: not detectable).
    """

    cls: type[nn.Module]
    scale_arg: str | None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    scales: tuple[int, ...] = (2, 3, 4)
    deploy: Callable[[nn.Module], nn.Module] | None = None
    is_deployed: Callable[[nn.Module], bool] | None = None
    option_extras: frozenset[str] = frozenset({'attn_type'})
    summary: str = ''
    detect: Callable[[Mapping[str, Any]], dict[str, Any] | None] | None = None

    @property
    def name(self) -> str:
        return self.cls.__name__


_ESC = dict(dim=64, pdim=16, kernel_size=13, n_blocks=5, conv_blocks=5, window_size=32, num_heads=4, exp_ratio=1.25)
_ELAN = dict(colors=3, r_expand=2, act_type='relu', window_sizes=[4, 8, 16], rgb_range=255)

_SPECS = (
    ArchSpec(ESC, 'upscaling_factor',
             presets={'esc': _ESC, 'esc_light': dict(_ESC, n_blocks=3),
                      'esc_xl': dict(_ESC, dim=192, pdim=48, n_blocks=8, window_size=48, num_heads=12, use_ln=True)},
             deploy=fold_geometric_ensemble, is_deployed=geometric_ensemble_folded,
             summary='ESC, ESC-light, ESC-XL (ICCV 2025)', detect=detect_esc),
    ArchSpec(ESCFP, 'upscaling_factor', presets={'esc_fp': dict(_ESC, dim=48, num_heads=3)},
             summary='ESC-FP: decomposed large kernel, bicubic skip', detect=detect_esc_fp),
    ArchSpec(ESCReal, 'upscaling_factor', presets={'esc_real': dict(_ESC, n_blocks=10, exp_ratio=2)}, scales=(4,),
             deploy=fold_geometric_ensemble, is_deployed=geometric_ensemble_folded,
             summary='ESC-Real: real-world x4', detect=detect_esc_real),
    ArchSpec(ELAN, 'scale',
             presets={'elan_light': dict(_ELAN, m_elan=24, c_elan=60, n_share=1),
                      'elan': dict(_ELAN, m_elan=36, c_elan=180, n_share=0)},
             deploy=fold_batchnorm, is_deployed=batchnorm_folded, option_extras=frozenset({'input_range'}),
             summary='ELAN, ELAN-light (ECCV 2022)', detect=detect_elan),
    ArchSpec(ESCRealM, 'upscaling_factor',
             presets={'esc_realm': dict(_ESC, n_blocks=10, exp_ratio=2, mid_dim=48, upsampler='nearest+conv',
                                        unshuffle_mod=True)},
             scales=(1, 2, 3, 4), deploy=fold_geometric_ensemble, is_deployed=geometric_ensemble_folded,
             summary='ESCRealM: multi-scale real-world (x1-x4), unified upsampler', detect=detect_esc_realm),
    ArchSpec(ESCLTE, None, presets={'esc_lte': dict(_ESC, hidden_dim=256, imnet_hidden=[256, 256, 256])}, scales=(),
             deploy=fold_esc_lte, is_deployed=esc_lte_folded,
             summary='ESC + LTE: arbitrary scale (query-based decoder)', detect=detect_esc_lte),
)

ARCHITECTURES: Mapping[str, ArchSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def arch_spec(name: str) -> ArchSpec:
    """The :class:`ArchSpec` registered as ``name`` (a ``network_g.type``)."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f'{name!r} is not an esc_basicsr architecture; known: {sorted(ARCHITECTURES)}') from None


def presets() -> dict[str, tuple[ArchSpec, Mapping[str, Any]]]:
    """Preset name -> (its architecture, its constructor arguments without the scale)."""
    return {preset: (spec, kwargs) for spec in _SPECS for preset, kwargs in spec.presets.items()}


# --- Display names: how the tools' output and figures name a network (issue 23). Kept apart from
# _SPECS; :func:`esc_basicsr.archs.presets.display_name` reads them: a preset's name, else, for
# another configuration of one of our architectures, the architecture's name. ---
PRESET_DISPLAY_NAMES: Mapping[str, str] = MappingProxyType({
    'esc': 'ESC', 'esc_light': 'ESC-light', 'esc_xl': 'ESC-XL', 'esc_fp': 'ESC-FP', 'esc_real': 'ESC-Real',
    'elan_light': 'ELAN-light', 'elan': 'ELAN', 'esc_realm': 'ESCRealM', 'esc_lte': 'ESC-LTE'})
ARCH_DISPLAY_NAMES: Mapping[str, str] = MappingProxyType({
    'ESC': 'ESC', 'ESCFP': 'ESC-FP', 'ESCReal': 'ESC-Real', 'ELAN': 'ELAN', 'ESCRealM': 'ESCRealM', 'ESCLTE': 'ESC-LTE'})
