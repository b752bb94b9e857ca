"""The architecture table: every row states the facts its readers need, and the readers (detection,
deployment, presets, tiling, spandrel) take them from the table alone, so that a new network is its
``*_arch.py`` plus one row."""
from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from esc_basicsr.archs import table
from esc_basicsr.archs.checkpoint import subpixel_scale
from esc_basicsr.archs.deploy import deploy, is_deployed
from esc_basicsr.archs.detection import detect, from_state_dict
from esc_basicsr.archs.elan_arch import convert_authors_checkpoint
from esc_basicsr.archs.presets import build, network_g
from esc_basicsr.archs.table import (ARCHITECTURES, ArchSpec, network_arbitrary_scale, network_input_multiple,
                                     network_value_range, presets, with_unit_range)

CONFIGS = [(preset, scale) for preset, (spec, _) in presets().items() for scale in spec.scales or (2,)]


def attention_grid(model: nn.Module) -> int:
    """Least common multiple of the attention windows found on ``model``'s modules."""
    sizes = []
    for module in model.modules():
        for attr in ('window_size', 'window_sizes'):
            value = getattr(module, attr, None)
            sizes += [value] if isinstance(value, int) else list(value) if isinstance(value, (tuple, list)) else []
    return math.lcm(*sizes) if sizes else 1


@pytest.mark.parametrize('name', sorted(ARCHITECTURES))
def test_every_row_states_its_facts(name: str) -> None:
    spec = ARCHITECTURES[name]
    assert spec.name == name and callable(spec.detect) and callable(spec.input_multiple) and callable(spec.tags)
    assert isinstance(spec.supports_half, bool) and isinstance(spec.supports_bfloat16, bool)
    if spec.arbitrary_scale:
        assert spec.scale_arg is None and spec.scales == ()
    assert set(spec.unit_range_args) <= spec.option_extras
    assert spec.not_in_weights <= set(inspect.signature(spec.cls).parameters)
    for kwargs in spec.presets.values():
        tags = spec.tags(spec.arguments(kwargs))
        assert tags and all(isinstance(t, str) for t in tags)


@pytest.mark.parametrize('preset,scale', CONFIGS)
def test_input_multiple_is_the_attention_grid_on_the_input(preset: str, scale: int) -> None:
    """The table's grid is the attention windows' grid, times the input unshuffling where the trunk
    runs on an unshuffled input (ESCRealM at x1, x2)."""
    model = build(preset, scale)
    assert network_input_multiple(network_g(preset, scale)) == attention_grid(model) * getattr(model, 'unshuffle', 1)


@pytest.mark.parametrize('scale,overrides,expected', [
    (1, {}, 128), (2, {}, 64), (3, {}, 32), (4, {}, 32), (2, {'unshuffle_mod': False}, 32),
    (1, {'upsampler': 'conv'}, 32)])  # conv never unshuffles
def test_escrealm_input_multiple_includes_unshuffle(scale: int, overrides: dict[str, Any], expected: int) -> None:
    assert network_input_multiple(network_g('esc_realm', scale, **overrides)) == expected
    defaults_only = {'type': 'ESCRealM', **{k: v for k, v in network_g('esc_realm', 1).items()
                                            if k in ('dim', 'pdim', 'kernel_size', 'n_blocks', 'conv_blocks',
                                                     'window_size', 'num_heads')}}
    assert network_input_multiple(defaults_only) == 32  # x4 by default: constructor defaults fill the rest


def test_value_range_and_unit_range() -> None:
    elan = network_g('elan_light', 4)
    assert network_value_range(elan) == 255.0 == build('elan_light', 4).input_range
    unit = with_unit_range(elan)
    assert unit == {**elan, 'input_range': 1.0} and network_value_range(unit) == 1.0
    assert with_unit_range({**elan, 'input_range': 2.0})['input_range'] == 2.0  # given: kept
    esc = network_g('esc', 2)
    assert with_unit_range(esc) == esc and network_value_range(esc) == 1.0
    swinir = {'type': 'SwinIR', 'upscale': 2}
    assert with_unit_range(swinir) == swinir and network_value_range(swinir) is None
    assert network_input_multiple(swinir) is None


def test_arbitrary_scale_is_read_from_the_row() -> None:
    """What the tools holding a network read (infer, export, benchmark, loading): the row of network_g's type."""
    assert all(network_arbitrary_scale({'type': n}) is spec.arbitrary_scale for n, spec in ARCHITECTURES.items())
    assert any(spec.arbitrary_scale for spec in ARCHITECTURES.values())
    assert not network_arbitrary_scale({'type': 'SwinIR', 'upscale': 2})  # BasicSR's own: a fixed scale


@pytest.mark.parametrize('name', [n for n, s in ARCHITECTURES.items() if s.convert_checkpoint is not None])
def test_convert_checkpoint_loads_another_scale(name: str) -> None:
    spec = ARCHITECTURES[name]
    preset = next(iter(spec.presets))
    x2, x3 = build(preset, 2).state_dict(), build(preset, 3)
    converted = spec.convert_checkpoint(x2, spec.arguments(network_g(preset, 3)))
    shapes = {k: v.shape for k, v in x3.state_dict().items()}
    assert {k: v.shape for k, v in converted.items()} == shapes
    assert any(shapes[k] != v.shape for k, v in x2.items())  # something was converted (the sub-pixel layer)
    x3.load_state_dict(converted, strict=True)
    via_load = build(preset, 3)
    via_load.load_state_dict(x2, strict=True)  # the network's load_state_dict applies the same conversion
    assert all(torch.equal(a, b) for a, b in zip(via_load.state_dict().values(), x3.state_dict().values()))


def test_authors_checkpoint_conversion_is_declared() -> None:
    assert ARCHITECTURES['ELAN'].convert_authors_checkpoint is convert_authors_checkpoint
    assert [n for n, s in ARCHITECTURES.items() if s.convert_authors_checkpoint is not None] == ['ELAN']


# --------------------------------------------------------------------------- a row added to the table

class Shuffle(nn.Module):
    """A network for the test only: conv3x3 to ``3 * factor^2`` channels, pixel shuffle."""

    def __init__(self, factor: int, grid: int = 8) -> None:
        super().__init__()
        self.factor, self.grid = factor, grid
        self.shuffle_conv = nn.Conv2d(3, 3 * factor * factor, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.shuffle_conv(x), self.factor)


def detect_shuffle(sd: Any) -> dict[str, Any] | None:
    if set(sd) != {'shuffle_conv.weight', 'shuffle_conv.bias'}:
        return None
    return {'factor': subpixel_scale(sd['shuffle_conv.weight'].shape[0])}


def fold_shuffle(model: nn.Module) -> nn.Module:
    model.folded = True
    return model


SHUFFLE = ArchSpec(Shuffle, 'factor', scales=(2,), detect=detect_shuffle, deploy=fold_shuffle,
                   is_deployed=lambda m: getattr(m, 'folded', False), input_multiple=lambda kw: 3 * kw['grid'],
                   supports_half=False, tags=lambda kw: [f'grid {kw["grid"]}'])


@pytest.fixture()
def shuffle_row(monkeypatch: pytest.MonkeyPatch) -> ArchSpec:
    monkeypatch.setitem(table._ROWS, 'Shuffle', SHUFFLE)
    return SHUFFLE


def test_a_new_row_is_read_without_other_edits(shuffle_row: ArchSpec) -> None:
    from esc_basicsr.tools.tiling import tile_alignment

    model = Shuffle(2)
    assert detect(model.state_dict()) == ('Shuffle', {'factor': 2})
    loaded = from_state_dict({'params': model.state_dict()})
    assert isinstance(loaded, Shuffle) and not loaded.training
    assert not is_deployed(loaded) and is_deployed(deploy(loaded))
    assert network_input_multiple({'type': 'Shuffle', 'factor': 2}) == 24  # grid 8: the constructor's default
    assert tile_alignment(model, {'type': 'Shuffle', 'factor': 2, 'grid': 4}) == 12


def test_a_new_row_reaches_spandrel(shuffle_row: ArchSpec) -> None:
    spandrel = pytest.importorskip('spandrel')
    import esc_basicsr.spandrel as esc_spandrel

    registry = spandrel.MAIN_REGISTRY.copy()
    assert 'esc_basicsr.Shuffle' in esc_spandrel.install(registry)
    desc = spandrel.ModelLoader(registry=registry).load_from_state_dict(Shuffle(2).state_dict())
    assert desc.architecture.name == 'Shuffle' and desc.scale == 2 and isinstance(desc.model, Shuffle)
    assert desc.supports_half is False and desc.supports_bfloat16 is True  # the row's flags
    assert desc.tags == ['grid 8']
