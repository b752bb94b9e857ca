"""spandrel integration: esc_basicsr.spandrel.install() makes spandrel load our checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esc_basicsr.archs import ARCHITECTURES, ESC, build

from tests.conftest import FIXTURE_FILES, REFERENCE_NAMES, assert_reproduces, require_arch
from tests.conftest import load_fixture_or_skip as load

spandrel = pytest.importorskip('spandrel')
import esc_basicsr.spandrel as esc_spandrel  # noqa: E402  (needs spandrel)


@pytest.fixture()
def registry():
    """A copy of spandrel's main registry with ours installed (the global one is left alone)."""
    reg = spandrel.MAIN_REGISTRY.copy()
    added = esc_spandrel.install(reg)
    assert added and esc_spandrel.install(reg) == []  # idempotent
    return reg


def save(tmp_path: Path, state_dict: dict, prefix: str = '') -> Path:
    path = tmp_path / 'model.pth'
    torch.save({'params_ema': {prefix + k: v for k, v in state_dict.items()}}, path)
    return path


@pytest.mark.parametrize('name', FIXTURE_FILES)
def test_fixture_through_spandrel(name: str, registry, tmp_path: Path) -> None:
    fix = load(name)
    arch = REFERENCE_NAMES.get(fix['arch'], fix['arch'])
    require_arch(arch)
    desc = spandrel.ModelLoader(registry=registry).load_from_file(save(tmp_path, fix['state_dict'], 'module.'))
    assert isinstance(desc, spandrel.ImageModelDescriptor)
    assert desc.architecture.name == arch
    expected_scale = {'ESCLTE': 4, 'ELAN': fix['kwargs'].get('scale')}.get(arch, fix['kwargs'].get('upscaling_factor'))
    assert desc.scale == expected_scale
    assert (desc.input_channels, desc.output_channels) == (3, 3)
    assert desc.size_requirements.none and desc.tiling == spandrel.ModelTiling.SUPPORTED
    spec = ARCHITECTURES[arch]  # the row's flags (that they hold: tests/archs/test_table_harness.py)
    assert (desc.supports_half, desc.supports_bfloat16) == (spec.supports_half, spec.supports_bfloat16)
    x = fix['input'][:1]
    if arch == 'ELAN':  # spandrel passes [0, 1] images: built with input_range 1.0
        rgb_range = fix['kwargs']['rgb_range']
        x = x / rgb_range
        with torch.no_grad():
            torch.testing.assert_close(desc.model(x) * rgb_range, fix['output_float64'][:1].float(),
                                       atol=2e-5 * rgb_range, rtol=0)
    else:
        assert_reproduces(desc.model, fix)
    out = desc(x)  # spandrel's call: (1, 3, H, W) in [0, 1] -> clamped, at the descriptor's scale
    assert out.shape[-2:] == (x.shape[-2] * desc.scale, x.shape[-1] * desc.scale)
    if arch != 'ESCLTE':
        expected = fix['output'][:1] / (fix['kwargs']['rgb_range'] if arch == 'ELAN' else 1)
        torch.testing.assert_close(out, expected.clamp(0, 1), atol=1e-4, rtol=0)


def test_descriptor_tags_name_the_preset(registry) -> None:
    assert registry.load(build('esc_light', 2).state_dict()).tags[0] == 'esc_light'


def test_other_models_still_load_and_ours_are_found_first(registry) -> None:
    span = registry.load(spandrel.MAIN_REGISTRY['SPAN'].architecture.load(_span_state_dict()).model.state_dict())
    assert span.architecture.id == 'SPAN'
    sd = ESC(dim=16, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=4, num_heads=2,
             upscaling_factor=3, exp_ratio=1.5).state_dict()
    desc = registry.load(sd)
    assert desc.architecture.id == 'esc_basicsr.ESC' and desc.scale == 3


def _span_state_dict() -> dict:
    from spandrel.architectures.SPAN import SPAN

    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2).state_dict()


def test_unknown_state_dict_is_not_claimed(registry) -> None:
    with pytest.raises(spandrel.UnsupportedModelError):
        registry.load({'foo.weight': torch.zeros(3, 3)})


def test_install_into_the_main_registry() -> None:
    esc_spandrel.install()
    assert 'esc_basicsr.ESC' in spandrel.MAIN_REGISTRY
    assert esc_spandrel.install() == []
