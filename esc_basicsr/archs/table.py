"""The table of architectures: each network of esc_basicsr described once.

Registration into BasicSR (:mod:`esc_basicsr.integration.registration`), the presets
(:mod:`.presets`), detection (:mod:`.detection`), deployment folding (:mod:`.deploy`), the spandrel
descriptors (:mod:`esc_basicsr.spandrel`), tiling, test-time padding, checkpoint loading, the attention
backend the tools set (``--attn``) and the command-line tools' choices all read :data:`ARCHITECTURES`.
Adding a network means writing its ``*_arch.py`` (the network and the functions a row names: detection,
folding...) and one :class:`ArchSpec` row here.

Floors: the ``*_arch.py`` modules and what they use (:mod:`.esc_trunk`, :mod:`.checkpoint`,
:mod:`.state_dict_layout`) sit below this module; the modules that read the table (:mod:`.presets`,
:mod:`.detection`, :mod:`.deploy`) sit above it. Nothing below imports the table.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from ..layers.attention_gate import GATE_TYPES
from ..layers.skip_upsampler import UPSAMPLER_TYPES
from ..layers.upsamplers import UPSAMPLERS
from . import elan_arch, esc_realm_arch, esc_rib_arch
from .checkpoint import convert_subpixel_checkpoint
from .elan_arch import ELAN, batchnorm_folded, convert_authors_checkpoint, detect_elan, fold_batchnorm
from .esc_arch import ESC, detect_esc
from .esc_fp_arch import ESCFP, detect_esc_fp
from .esc_lte_arch import ESCLTE, detect_esc_lte, esc_lte_folded, fold_esc_lte
from .esc_real_arch import ESCReal, detect_esc_real
from .esc_realm_arch import ESCRealM, detect_esc_realm
from .esc_rib_arch import ATTENTION_KINDS, ESCRIB, convert_upsampler_checkpoint, detect_esc_rib
from .esc_trunk import fold_geometric_ensemble, geometric_ensemble_folded, trunk_tags, window_multiple

Kwargs = Mapping[str, Any]
StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ArchSpec:
    """How esc_basicsr knows one architecture.

    Functions of a configuration take its constructor arguments completed with the defaults
    (:meth:`arguments`), without ``type``.

    Attributes:
        cls: the ``nn.Module`` class; its name is the BasicSR registry name (``network_g.type``).
        scale_arg: constructor argument holding the upscaling factor (``None``: no fixed scale).
        presets: preset name -> constructor arguments without the scale (the paper's variants).
        scales: the scales the architecture supports.
        deploy: in-place folding of training-time re-parameterisations (``None``: nothing to fold).
        is_deployed: whether ``deploy`` was already applied to a model.
        option_extras: ``network_g`` keys an option file may add to a preset (not part of the variant).
        backend_arg: the constructor argument that picks the attention backend
            (``auto|naive|sdpa|flex``), which the tools' ``--attn`` sets: ``attn_type`` in the ESC family,
            ``attn_backend`` in ESCRIB (whose ``attn_type`` is the authors' attention kind, part of the
            variant). ``None``: no backend to choose (ELAN). One of ``option_extras``.
        summary: one line for the documentation.
        detect: state_dict -> constructor arguments (scale included), or ``None`` if the weights are
            not of this architecture (``None``: not detectable). Beside each network; the helpers
            they share are in :mod:`.state_dict_layout`.
        not_in_weights: constructor arguments the weights may leave open: ``detect`` answers a
            documented default for them (ELAN's ``window_sizes``, ESCRIB's ``window_size`` of RIB
            weights), which ``from_state_dict(sd, **overrides)`` or an option file replaces. Besides
            these, the weights fix every argument but ``option_extras``.
        input_multiple: configuration -> the input size its computation is aligned to (window grid,
            input unshuffling included): tiles and test-time padding use multiples of it.
            ``None``: 1 (no grid).
        value_range: configuration -> the range of the images it takes and returns (1.0: [0, 1]).
            ``None``: 1.0.
        unit_range_args: constructor arguments a tool adds so that the network takes and returns
            [0, 1] images like every BasicSR network (ELAN: ``input_range: 1.0``); keys of
            ``option_extras``.
        arbitrary_scale: the output size is an argument of the call (``upscale(lq, size)``), not a
            property of the network (ESC-LTE); then ``scale_arg`` is ``None``. Tools holding a model
            read it through its ``network_g`` (:func:`network_arbitrary_scale`).
        supports_half: float16 inference matches float32 (spandrel's ``supports_half``).
        supports_bfloat16: bfloat16 inference matches float32 (spandrel's ``supports_bfloat16``).
        tags: configuration -> short size tags (spandrel's descriptor tags, after the preset name).
            ``None``: none.
        convert_checkpoint: ``(state_dict, configuration) -> state_dict`` making the weights of another
            configuration of the same network loadable into this one (ESC, ESC-FP: the sub-pixel
            output layer resized to the scale); the network's ``load_state_dict`` applies it.
            ``None``: checkpoints load as they are.
        convert_authors_checkpoint: a file saved by the authors' own trainer -> the BasicSR form
            ``{'params': state_dict}`` (ELAN). Not a ``convert_checkpoint``: it reads a training
            file's container (its keys, a ``module.`` prefix), whatever the configuration, before
            anything is built or detected, and leaves the tensors as they are.
        display_name: how the tools' output and figures name another configuration of the network
            (``ESC-FP``). ``''``: the class name.
        preset_names: preset -> how the tools name it (``esc_light`` -> ``ESC-light``); every preset.
        variants: constructor arguments that change the network's layout other than by its sizes (another
            upsampler, attention kind or gate, an extra LayerNorm) -> every value they take. A preset picks
            one value of each; checkpoints of the other combinations exist (the authors' options) and
            detection tells them apart. The tests build each other value on the first preset.
    """

    cls: type[nn.Module]
    scale_arg: str | None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    scales: tuple[int, ...] = (2, 3, 4)
    deploy: Callable[[nn.Module], nn.Module] | None = None
    is_deployed: Callable[[nn.Module], bool] | None = None
    option_extras: frozenset[str] = frozenset({'attn_type'})
    backend_arg: str | None = 'attn_type'
    summary: str = ''
    detect: Callable[[StateDict], dict[str, Any] | None] | None = None
    not_in_weights: frozenset[str] = frozenset()
    input_multiple: Callable[[Kwargs], int] | None = None
    value_range: Callable[[Kwargs], float] | None = None
    unit_range_args: Mapping[str, Any] = field(default_factory=dict)
    arbitrary_scale: bool = False
    supports_half: bool = True
    supports_bfloat16: bool = True
    tags: Callable[[Kwargs], list[str]] | None = None
    convert_checkpoint: Callable[[StateDict, Kwargs], dict[str, torch.Tensor]] | None = None
    convert_authors_checkpoint: Callable[[Mapping[str, Any]], dict[str, dict[str, torch.Tensor]]] | None = None
    display_name: str = ''
    preset_names: Mapping[str, str] = field(default_factory=dict)
    variants: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.preset_names) != set(self.presets):
            raise ValueError(f'{self.name}: preset_names must name every preset ({sorted(self.presets)})')
        if self.arbitrary_scale and self.scale_arg is not None:
            raise ValueError(f'{self.name}: an arbitrary-scale network has no scale argument')
        if not set(self.unit_range_args) <= self.option_extras:
            raise ValueError(f'{self.name}: unit_range_args must be option_extras')
        if self.backend_arg is not None and self.backend_arg not in self.option_extras:
            raise ValueError(f'{self.name}: backend_arg {self.backend_arg!r} must be one of option_extras')
        arguments = set(inspect.signature(self.cls).parameters) - self.option_extras
        if not set(self.variants) <= arguments or not all(self.variants.values()):
            raise ValueError(f'{self.name}: variants must give values of constructor arguments (not option_extras)')

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def label(self) -> str:
        """How the tools name the architecture (:attr:`display_name`, else the class name)."""
        return self.display_name or self.name

    def arguments(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``kwargs`` (a ``network_g``, ``type`` dropped) completed with the constructor's defaults."""
        params = inspect.signature(self.cls).parameters
        defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
        return {**defaults, **{k: v for k, v in kwargs.items() if k != 'type'}}


_ESC = dict(dim=64, pdim=16, kernel_size=13, n_blocks=5, conv_blocks=5, window_size=32, num_heads=4, exp_ratio=1.25)
_ELAN = dict(colors=3, r_expand=2, act_type='relu', window_sizes=[4, 8, 16], rgb_range=255)
_WITH_LN = MappingProxyType({'use_ln': (False, True)})  # LayerNorm before each ConvFFN of the pairs (ESC-XL)
# supports_half/bfloat16: fp16/bf16 (CPU autocast, cast weights) are checked against float32 for every row and
# variant by tests/archs/test_table_harness.py, on default-initialised weights with calibrated BatchNorm (the
# ESC fixtures' random weights overflow fp16): on a CPU fp16 <= 0.15%, bf16 <= 1.1% mean relative error

_SPECS = (
    ArchSpec(ESC, 'upscaling_factor',
             presets={'esc': _ESC, 'esc_light': dict(_ESC, n_blocks=3),
                      'esc_xl': dict(_ESC, dim=192, pdim=48, n_blocks=8, window_size=48, num_heads=12, use_ln=True)},
             deploy=fold_geometric_ensemble, is_deployed=geometric_ensemble_folded,
             summary='ESC, ESC-light, ESC-XL (ICCV 2025)', detect=detect_esc, input_multiple=window_multiple,
             tags=trunk_tags, convert_checkpoint=convert_subpixel_checkpoint,
             preset_names={'esc': 'ESC', 'esc_light': 'ESC-light', 'esc_xl': 'ESC-XL'}, variants=_WITH_LN),
    ArchSpec(ESCFP, 'upscaling_factor', presets={'esc_fp': dict(_ESC, dim=48, num_heads=3)},
             summary='ESC-FP: decomposed large kernel, bicubic skip', detect=detect_esc_fp,
             input_multiple=window_multiple, tags=trunk_tags, convert_checkpoint=convert_subpixel_checkpoint,
             display_name='ESC-FP', preset_names={'esc_fp': 'ESC-FP'}),
    ArchSpec(ESCReal, 'upscaling_factor', presets={'esc_real': dict(_ESC, n_blocks=10, exp_ratio=2)}, scales=(4,),
             deploy=fold_geometric_ensemble, is_deployed=geometric_ensemble_folded,
             summary='ESC-Real: real-world x4', detect=detect_esc_real, input_multiple=window_multiple,
             tags=trunk_tags, display_name='ESC-Real', preset_names={'esc_real': 'ESC-Real'},
             variants=MappingProxyType({'use_dysample': (False, True)})),
    ArchSpec(ELAN, 'scale',
             presets={'elan_light': dict(_ELAN, m_elan=24, c_elan=60, n_share=1),
                      'elan': dict(_ELAN, m_elan=36, c_elan=180, n_share=0)},
             deploy=fold_batchnorm, is_deployed=batchnorm_folded, option_extras=frozenset({'input_range'}),
             backend_arg=None, summary='ELAN, ELAN-light (ECCV 2022)', detect=detect_elan,
             not_in_weights=frozenset({'window_sizes'}), input_multiple=elan_arch.input_multiple,
             value_range=elan_arch.value_range, unit_range_args=MappingProxyType(elan_arch.UNIT_RANGE),
             tags=elan_arch.tags, convert_authors_checkpoint=convert_authors_checkpoint,
             preset_names={'elan_light': 'ELAN-light', 'elan': 'ELAN'}),
    ArchSpec(ESCRealM, 'upscaling_factor',
             presets={'esc_realm': dict(_ESC, n_blocks=10, exp_ratio=2, mid_dim=48, upsampler='nearest+conv',
                                        unshuffle_mod=True)},
             scales=(1, 2, 3, 4), deploy=fold_geometric_ensemble, is_deployed=geometric_ensemble_folded,
             summary='ESCRealM: multi-scale real-world (x1-x4), unified upsampler', detect=detect_esc_realm,
             input_multiple=esc_realm_arch.input_multiple, tags=esc_realm_arch.tags,
             preset_names={'esc_realm': 'ESCRealM'},
             variants=MappingProxyType({'upsampler': UPSAMPLERS, 'unshuffle_mod': (True, False)})),
    ArchSpec(ESCLTE, None, presets={'esc_lte': dict(_ESC, hidden_dim=256, imnet_hidden=[256, 256, 256])}, scales=(),
             deploy=fold_esc_lte, is_deployed=esc_lte_folded,
             summary='ESC + LTE: arbitrary scale (query-based decoder)', detect=detect_esc_lte,
             input_multiple=window_multiple, arbitrary_scale=True, tags=trunk_tags, display_name='ESC-LTE',
             preset_names={'esc_lte': 'ESC-LTE'}, variants=_WITH_LN),
    # the authors' options/test/ESCRIB_X{2,3,4}.yaml; attn_type (RIB / FlashBias) is their attention kind, part
    # of the variant, and the backend is attn_backend
    ArchSpec(ESCRIB, 'upscaling_factor',
             presets={'esc_rib': dict(_ESC, window_size=64, attn_type='RIB', rank=16, rib_hidden_dim=32,
                                      rib_n_freqs=10, gate_type='DWC')},
             deploy=fold_geometric_ensemble, is_deployed=geometric_ensemble_folded,
             option_extras=frozenset({'attn_backend'}), backend_arg='attn_backend', supports_half=True,
             supports_bfloat16=True,
             summary='ESC-RIB (2026): RIB or FlashBias attention on plain fused kernels, 64x64 windows',
             detect=detect_esc_rib, not_in_weights=frozenset({'window_size'}), input_multiple=window_multiple,
             tags=esc_rib_arch.tags, convert_checkpoint=convert_upsampler_checkpoint, display_name='ESC-RIB',
             preset_names={'esc_rib': 'ESC-RIB'},
             variants=MappingProxyType({'attn_type': ATTENTION_KINDS, 'gate_type': (None, *GATE_TYPES),
                                        'upsampler_type': UPSAMPLER_TYPES, **_WITH_LN})),
)

_ROWS: dict[str, ArchSpec] = {spec.name: spec for spec in _SPECS}  # tests may add a row (monkeypatch.setitem)
ARCHITECTURES: Mapping[str, ArchSpec] = MappingProxyType(_ROWS)


def arch_spec(name: str) -> ArchSpec:
    """The :class:`ArchSpec` registered as ``name`` (a ``network_g.type``)."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f'{name!r} is not an esc_basicsr architecture; known: {sorted(ARCHITECTURES)}') from None


def presets() -> dict[str, tuple[ArchSpec, Mapping[str, Any]]]:
    """Preset name -> (its architecture, its constructor arguments without the scale)."""
    return {preset: (spec, kwargs) for spec in ARCHITECTURES.values() for preset, kwargs in spec.presets.items()}


def network_input_multiple(network_g: Mapping[str, Any]) -> int | None:
    """The input multiple (``ArchSpec.input_multiple``) of a ``network_g`` (with ``type``); ``None`` when
    the type is not an esc_basicsr architecture."""
    spec = ARCHITECTURES.get(network_g.get('type'))
    if spec is None:
        return None
    return 1 if spec.input_multiple is None else int(spec.input_multiple(spec.arguments(network_g)))


def network_value_range(network_g: Mapping[str, Any]) -> float | None:
    """The image range (``ArchSpec.value_range``) of a ``network_g`` (with ``type``); ``None`` when the
    type is not an esc_basicsr architecture."""
    spec = ARCHITECTURES.get(network_g.get('type'))
    if spec is None:
        return None
    return 1.0 if spec.value_range is None else float(spec.value_range(spec.arguments(network_g)))


def network_arbitrary_scale(network_g: Mapping[str, Any]) -> bool:
    """Whether a ``network_g`` (with ``type``) renders any scale (``ArchSpec.arbitrary_scale``); ``False``
    when the type is not an esc_basicsr architecture (BasicSR's own have a fixed scale)."""
    spec = ARCHITECTURES.get(network_g.get('type'))
    return spec is not None and spec.arbitrary_scale


def backend_argument(network_type: str) -> str | None:
    """The constructor argument that picks the attention backend (``ArchSpec.backend_arg``) of the
    architecture registered as ``network_type``; ``None`` when it has none or is not an esc_basicsr
    architecture (BasicSR's own)."""
    spec = ARCHITECTURES.get(network_type)
    return None if spec is None else spec.backend_arg


def with_unit_range(network_g: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``network_g`` (with ``type``) taking and returning [0, 1] images: the architecture's
    ``unit_range_args`` added where not given (ELAN: ``input_range: 1.0``); other types unchanged."""
    opt = dict(network_g)
    spec = ARCHITECTURES.get(opt.get('type'))
    for key, value in (spec.unit_range_args if spec is not None else {}).items():
        opt.setdefault(key, value)
    return opt
