"""spandrel support: every architecture of esc_basicsr's table (ESC, ESC-FP, ESC-Real, ESCRealM, ELAN, ESC-LTE,
ESC-RIB) in spandrel's registry.

spandrel (the model loader behind chaiNNer and other upscaling tools) recognises architectures from
a state_dict alone. :func:`install` adds ours, using the detectors of the architecture table
(:func:`esc_basicsr.archs.detect`), so that after it::

    import esc_basicsr.spandrel
    esc_basicsr.spandrel.install()
    model = spandrel.ModelLoader().load_from_file('ESC_x2.pth')   # ImageModelDescriptor, scale 2

Descriptors take and return ``(1, 3, H, W)`` images in [0, 1] of any size (our networks pad
internally: no size requirements) and support tiling. Everything a descriptor states comes from the
architecture table (:data:`esc_basicsr.archs.ARCHITECTURES`): the detector, the arguments that make
a network take [0, 1] images (ELAN, trained on [0, 255]: ``input_range=1.0``), the half/bfloat16
flags and the tags. An arbitrary-scale network (ESC-LTE) renders any scale; spandrel needs one
integer, so its descriptor upscales by ``lte_scale`` (argument of :func:`install`, default 4).

spandrel is an optional dependency (``pip install esc_basicsr[spandrel]``), imported only here.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping

import torch
import torch.nn as nn

from .archs.detection import build_from_state_dict, weights_scale
from .archs.table import ARCHITECTURES, arch_spec

ID_PREFIX = 'esc_basicsr.'


def _detects(name: str, state_dict: Mapping[str, Any]) -> dict[str, Any] | None:
    """Constructor arguments if ``state_dict`` is of architecture ``name``; never raises (a detector
    must not stop spandrel from trying the other architectures)."""
    detect = arch_spec(name).detect
    try:
        return detect(state_dict) if detect is not None else None
    except (ValueError, KeyError, IndexError, AttributeError):
        return None


def _tags(name: str, kwargs: Mapping[str, Any]) -> list[str]:
    """Preset name if the size matches one (``esc_light``), then the row's size tags (``ArchSpec.tags``)."""
    spec = arch_spec(name)
    tags = [preset for preset, args in spec.presets.items()
            if all(kwargs.get(k) == v for k, v in args.items() if k not in spec.option_extras)]
    return tags + (spec.tags(spec.arguments(kwargs)) if spec.tags is not None else [])


@functools.cache
def _architecture_class() -> type:
    """The spandrel ``Architecture`` subclass (defined on first use: spandrel is imported lazily)."""
    from spandrel import Architecture, ImageModelDescriptor, ModelTiling, SizeRequirements

    class EscBasicsrArchitecture(Architecture[nn.Module]):
        """One esc_basicsr architecture as spandrel sees it."""

        def __init__(self, name: str, lte_scale: int = 4) -> None:
            super().__init__(id=ID_PREFIX + name, name=name, detect=lambda sd: _detects(name, sd) is not None)
            self.arch_name = name
            self.lte_scale = lte_scale

        def load(self, state_dict: Mapping[str, Any]) -> ImageModelDescriptor[nn.Module]:
            spec = arch_spec(self.arch_name)
            kwargs = _detects(self.arch_name, state_dict)
            if kwargs is None:
                raise ValueError(f'not a state_dict of {self.arch_name}')
            kwargs.update(spec.unit_range_args)  # spandrel passes [0, 1] images
            tensors = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
            model = build_from_state_dict(self.arch_name, kwargs, tensors)
            scale = weights_scale(self.arch_name, kwargs)
            call_fn = None
            if spec.arbitrary_scale:  # ESC-LTE: a fixed integer scale for spandrel
                scale = self.lte_scale
                call_fn = functools.partial(_upscale_by, scale=scale)
            return ImageModelDescriptor(
                model, tensors, architecture=self, purpose='SR' if scale > 1 else 'Restoration',
                tags=_tags(self.arch_name, kwargs), supports_half=spec.supports_half,
                supports_bfloat16=spec.supports_bfloat16, scale=scale, input_channels=3, output_channels=3,
                size_requirements=SizeRequirements(), tiling=ModelTiling.SUPPORTED, call_fn=call_fn)

    return EscBasicsrArchitecture


def _upscale_by(model: nn.Module, image: torch.Tensor, scale: int) -> torch.Tensor:
    """ESC-LTE at a fixed scale: ``(1, 3, H, W)`` -> ``(1, 3, scale*H, scale*W)``."""
    h, w = image.shape[-2:]
    return model.upscale(image, (scale * h, scale * w))


def architectures(lte_scale: int = 4) -> list[Any]:
    """spandrel ``Architecture`` objects of every detectable entry of the architecture table."""
    cls = _architecture_class()
    return [cls(name, lte_scale) for name, spec in ARCHITECTURES.items() if spec.detect is not None]


def install(registry: Any = None, lte_scale: int = 4) -> list[str]:
    """Add esc_basicsr's architectures to spandrel's ``MAIN_REGISTRY`` (or ``registry``).

    Detected before spandrel's own architectures (our detectors only answer for our key layouts).
    Idempotent: architectures already present are kept.

    Args:
        registry: a ``spandrel.ArchRegistry``. Default: ``spandrel.MAIN_REGISTRY``.
        lte_scale: the integer scale of ESC-LTE descriptors (the network renders any). Default: 4.

    Returns:
        The ids added (``esc_basicsr.ESC``, ...); empty when already installed.
    """
    from spandrel import MAIN_REGISTRY, ArchSupport

    registry = MAIN_REGISTRY if registry is None else registry
    others = tuple(a.architecture.id for a in registry.architectures() if not a.architecture.id.startswith(ID_PREFIX))
    new = [ArchSupport.from_architecture(arch, before=others)
           for arch in architectures(lte_scale) if arch.id not in registry]
    return [a.architecture.id for a in registry.add(*new)]
