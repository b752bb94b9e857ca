"""Architecture detection from weights alone (esc_basicsr.archs.detect / from_state_dict): the reference
fixtures, checkpoint wrappers, sizes beyond the presets, deployed ELAN, and the errors.

Every preset, scale and variant of the table is detected in tests/archs/test_table_harness.py."""
from __future__ import annotations

import logging

import pytest
import torch

from esc_basicsr.archs import ELAN, ESC, UnknownArchitectureError, detect, fold_batchnorm, from_state_dict

from tests.conftest import FIXTURE_FILES, REFERENCE_NAMES, assert_reproduces, require_arch, run_fixture
from tests.conftest import load_fixture_or_skip as load


@pytest.mark.parametrize('name', FIXTURE_FILES)
def test_fixture_rebuilt_from_weights_alone(name: str) -> None:
    fix = load(name)
    arch = REFERENCE_NAMES.get(fix['arch'], fix['arch'])
    require_arch(arch)
    found, kwargs = detect(fix['state_dict'])
    assert found == arch
    reference = fix['kwargs'].get('encoder', fix['kwargs'])  # ESC+LTE nests its encoder's arguments
    for key, value in reference.items():
        assert kwargs[key] == value, key
    model = from_state_dict(fix['state_dict'])
    assert not model.training
    assert_reproduces(model, fix)


@pytest.mark.parametrize('wrap', ['params_ema', 'params', 'module_prefix', 'params_module_prefix'])
def test_checkpoint_wrappers(wrap: str) -> None:
    fix = load('esc_fp_x2.pt')
    sd = fix['state_dict']
    prefixed = {f'module.{k}': v for k, v in sd.items()}
    checkpoint = {'params_ema': sd, 'params': {}, 'iter': 5} if wrap == 'params_ema' else \
        {'params': sd} if wrap == 'params' else prefixed if wrap == 'module_prefix' else {'params': prefixed}
    assert detect(checkpoint) == detect(sd)
    assert_reproduces(from_state_dict(checkpoint), fix)


def _round_trip(model: torch.nn.Module, kwargs: dict) -> None:
    name, found = detect(model.state_dict())
    assert name == type(model).__name__
    assert found == kwargs


TINY = dict(dim=24, pdim=8, kernel_size=7, n_blocks=2, conv_blocks=3, window_size=8, num_heads=2)


@pytest.mark.parametrize('scale,exp_ratio,use_ln', [(2, 1.25, False), (3, 1.5, True), (4, 2.0, False),
                                                    (1, 1.75, True)])
def test_esc_any_size(scale: int, exp_ratio: float, use_ln: bool) -> None:
    kwargs = dict(TINY, upscaling_factor=scale, exp_ratio=exp_ratio, use_ln=use_ln)
    _round_trip(ESC(**kwargs), kwargs)


def test_esc_other_sizes() -> None:
    kwargs = dict(dim=36, pdim=12, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=6, num_heads=3,
                  upscaling_factor=2, exp_ratio=1.3, use_ln=False)
    _round_trip(ESC(**kwargs), kwargs)


# every upsampler at every scale with the preset's unshuffle_mod=True: tests/archs/test_table_harness.py;
# here the inputs that are not unshuffled (unshuffle_mod=False at x1/x2) and another mid_dim
REALM_CASES = [(1, 'conv', False)] + [(s, up, False) for up in ('pixelshuffledirect', 'pixelshuffle', 'nearest+conv',
                                                                'dysample') for s in (1, 2)]


@pytest.mark.parametrize('scale,upsampler,unshuffle', REALM_CASES)
def test_esc_realm_upsamplers_without_unshuffle(scale: int, upsampler: str, unshuffle: bool) -> None:
    require_arch('ESCRealM')
    from esc_basicsr.archs import ESCRealM

    kwargs = dict(TINY, upscaling_factor=scale, exp_ratio=2.0, mid_dim=12, upsampler=upsampler,
                  unshuffle_mod=unshuffle)
    # where the option changes nothing (x3/x4; conv, which never unshuffles) detection answers its default
    _round_trip(ESCRealM(**kwargs), dict(kwargs, unshuffle_mod=unshuffle or scale >= 3 or upsampler == 'conv'))


def test_esc_realm_without_meta_buffer() -> None:
    """Checkpoints of code versions without ``MetaUpsample``: the layout alone decides."""
    require_arch('ESCRealM')
    from esc_basicsr.archs import ESCRealM

    kwargs = dict(TINY, upscaling_factor=4, exp_ratio=2.0, mid_dim=16, upsampler='pixelshuffle', unshuffle_mod=True)
    sd = ESCRealM(**kwargs).state_dict()
    del sd['to_img.MetaUpsample']
    assert detect(sd) == ('ESCRealM', kwargs)


def test_esc_lte_any_size() -> None:
    require_arch('ESCLTE')
    from esc_basicsr.archs.esc_lte_arch import ESCLTE

    kwargs = dict(TINY, exp_ratio=1.5, use_ln=True, hidden_dim=32, imnet_hidden=[16, 8])
    _round_trip(ESCLTE(**kwargs), kwargs)


@pytest.mark.parametrize('m_elan,n_share,rgb_range', [(3, 0, 1.0), (6, 2, 255.0)])  # presets: the harness
def test_elan_any_size(m_elan: int, n_share: int, rgb_range: float) -> None:
    kwargs = dict(scale=3, rgb_range=rgb_range, colors=3, m_elan=m_elan, c_elan=12, n_share=n_share, r_expand=2,
                  act_type='relu', window_sizes=[4, 8, 16])
    _round_trip(ELAN(**kwargs), kwargs)


def test_elan_deployed_and_window_override() -> None:
    fix = load('elan_light_x4.pt')
    ref = ELAN(**fix['kwargs'])
    ref.load_state_dict(fix['state_dict'])
    folded = fold_batchnorm(ref).state_dict()  # no BatchNorm keys any more
    assert not any('project_inp.1' in k for k in folded)
    assert detect(folded)[1] == detect(fix['state_dict'])[1]
    model = from_state_dict(folded)
    torch.testing.assert_close(run_fixture(model, fix), run_fixture(ref, fix), atol=1e-3, rtol=0)
    assert from_state_dict(fix['state_dict'], window_sizes=[2, 4, 8], input_range=1.0).window_sizes == (2, 4, 8)


def test_unknown_state_dict_lists_architectures() -> None:
    conv = torch.nn.Conv2d(3, 8, 3).state_dict()
    with pytest.raises(UnknownArchitectureError) as err:
        detect(conv)
    message = str(err.value)
    for name in ('ESC', 'ESCFP', 'ESCReal', 'ELAN', 'weight'):
        assert name in message
    with pytest.raises(UnknownArchitectureError):
        from_state_dict({})


def test_broken_layout_says_what_was_recognised() -> None:
    kwargs = dict(TINY, upscaling_factor=2, exp_ratio=1.5, use_ln=False)
    sd = {k: v for k, v in ESC(**dict(kwargs, n_blocks=3)).state_dict().items() if not k.startswith('blocks.1.')}
    with pytest.raises(UnknownArchitectureError, match=r'partly recognised as ESC: blocks'):
        detect(sd)


def test_scale_conversion_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Loading x2 weights into an x4 ESC (fine-tuning initialisation) is visible, not INFO-only."""
    sd = ESC(**dict(TINY, upscaling_factor=2)).state_dict()
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        ESC(**dict(TINY, upscaling_factor=4)).load_state_dict(sd)
    assert any(r.levelno == logging.WARNING and 'x2 to x4' in r.getMessage() for r in caplog.records)
