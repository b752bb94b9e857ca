"""Architecture detection from weights alone (esc_basicsr.archs.detect / from_state_dict)."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from esc_basicsr.archs import ARCHITECTURES, ELAN, ESC, ESCFP, ESCReal, UnknownArchitectureError, detect, \
    fold_batchnorm, from_state_dict

from .conftest import FIXTURES, REPO

# tests/fixtures holds the copies; fixtures not copied yet are read from the shared folder beside the repo
SHARED_FIXTURES = REPO.parent / 'shared' / 'fixtures'
FIXTURE_FILES = ['esc_x2.pt', 'esc_light_x4.pt', 'esc_fp_x2.pt', 'esc_real_x4_small.pt', 'esc_real_dysample_x4.pt',
                 'esc_realm_x2_pixelshuffle_unshuffle.pt', 'elan_light_x4.pt', 'esc_lte_x2.5.pt', 'escrib_x2.pt',
                 'escrib_flashbias_x4_small.pt']
REFERENCE_NAMES = {'ESC+LTE': 'ESCLTE'}  # the fixture's reference name -> ours


def fixture_path(name: str) -> Path:
    for folder in (FIXTURES, SHARED_FIXTURES):
        if (folder / name).exists():
            return folder / name
    pytest.skip(f'fixture {name} not available')


def load(name: str) -> dict:
    return torch.load(fixture_path(name), weights_only=True)


def require_arch(name: str) -> None:
    if name not in ARCHITECTURES:
        pytest.skip(f'{name} has no entry in the architecture table yet')


def run_fixture(model: torch.nn.Module, fix: dict) -> torch.Tensor:
    with torch.no_grad():
        if 'out_hw' in fix:  # arbitrary scale: the output size is an argument
            return model.upscale(fix['input'], tuple(fix['out_hw']))
        return model(fix['input'])


def assert_reproduces(model: torch.nn.Module, fix: dict) -> None:
    out = run_fixture(model, fix)
    if 'output_float64' in fix:  # ELAN at rgb_range 255: float32 rounds at ~3e-5 of the hundreds
        tol = 1e-5 * fix['kwargs']['rgb_range']
        torch.testing.assert_close(out, fix['output_float64'].float(), atol=tol, rtol=0)
    else:
        torch.testing.assert_close(out, fix['output'], atol=1e-4, rtol=0)


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


def test_esc_fp_and_real_any_size() -> None:
    fp = dict(TINY, upscaling_factor=3, exp_ratio=1.25)
    _round_trip(ESCFP(**fp), fp)
    for dysample in (False, True):
        real = dict(TINY, upscaling_factor=4, exp_ratio=2.0, use_dysample=dysample)
        _round_trip(ESCReal(**real), real)


REALM_CASES = [(s, up, unshuffle) for up in ('conv', 'pixelshuffledirect', 'pixelshuffle', 'nearest+conv', 'dysample')
               for s in (1, 2, 3, 4) for unshuffle in (True, False)
               if not (up == 'conv' and (s > 1 or unshuffle))]


@pytest.mark.parametrize('scale,upsampler,unshuffle', REALM_CASES)
def test_esc_realm_every_upsampler(scale: int, upsampler: str, unshuffle: bool) -> None:
    require_arch('ESCRealM')
    from esc_basicsr.archs import ESCRealM

    kwargs = dict(TINY, upscaling_factor=scale, exp_ratio=2.0, mid_dim=12, upsampler=upsampler,
                  unshuffle_mod=unshuffle or scale >= 3)  # at x3/x4 the option builds the same network
    _round_trip(ESCRealM(**kwargs), kwargs)


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


@pytest.mark.parametrize('m_elan,n_share,rgb_range', [(4, 1, 255.0), (3, 0, 1.0), (6, 2, 255.0)])
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


# ------------------------------------------------------------------- command-line tools, weights only

@pytest.fixture()
def tiny_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = ESC(dim=16, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=4, num_heads=2,
                upscaling_factor=2, exp_ratio=1.5)
    path = tmp_path / 'tiny_x2.pth'
    torch.save({'params_ema': {f'module.{k}': v for k, v in model.state_dict().items()}}, path)
    return path


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    import cv2
    import numpy as np

    path = tmp_path / 'in.png'
    cv2.imwrite(str(path), (np.random.default_rng(0).random((10, 12, 3)) * 255).astype(np.uint8))
    return path


def test_infer_with_weights_only(tiny_checkpoint: Path, image: Path, tmp_path: Path) -> None:
    import cv2

    from esc_basicsr.infer import main

    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--weights', str(tiny_checkpoint), '--quiet']) == 0
    assert cv2.imread(str(tmp_path / 'out' / 'in.png')).shape == (20, 24, 3)


@pytest.mark.parametrize('tool', ['infer', 'export', 'benchmark'])
def test_scale_disagreeing_with_the_weights_is_an_error(tool: str, tiny_checkpoint: Path, image: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import importlib

    main = importlib.import_module(f'esc_basicsr.{tool}').main
    args = {'infer': ['-i', str(image), '-o', str(tmp_path / 'out'), '--quiet'],
            'export': ['-o', str(tmp_path / 'dep.pth')], 'benchmark': ['--no-timing', '--no-macs']}[tool]
    assert main([*args, '--weights', str(tiny_checkpoint), '--scale', '4']) == 2
    err = capsys.readouterr().err
    assert 'x4' in err and 'ESC x2' in err
    assert not (tmp_path / 'out' / 'in.png').exists() and not (tmp_path / 'dep.pth').exists()


def test_option_file_scale_disagreeing_with_the_weights(tiny_checkpoint: Path, image: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    import yaml

    from esc_basicsr.infer import main

    opt = tmp_path / 'opt.yml'
    network_g = dict(type='ESC', dim=16, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=4,
                     num_heads=2, upscaling_factor=3, exp_ratio=1.5)
    opt.write_text(yaml.safe_dump({'scale': 3, 'network_g': network_g}))
    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--weights', str(tiny_checkpoint),
                 '--opt', str(opt), '--quiet']) == 2
    assert 'x3' in capsys.readouterr().err


def test_export_and_benchmark_with_weights_only(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import json

    from esc_basicsr.benchmark import main as benchmark
    from esc_basicsr.export import main as export
    from esc_basicsr.tools.loading import load_network

    deployed = tmp_path / 'dep.pth'
    assert export(['--weights', str(tiny_checkpoint), '-o', str(deployed)]) == 0
    loaded = load_network(deployed)  # the deployed meta path still works
    assert loaded.scale == 2 and loaded.network_g['dim'] == 16
    out = tmp_path / 'b.json'
    assert benchmark(['--weights', str(tiny_checkpoint), '--no-timing', '--no-macs', '--no-isolate',
                      '--json', str(out)]) == 0
    rows = json.loads(out.read_text())['results']
    assert [r['arch'] for r in rows] == ['ESC'] and rows[0]['scale'] == 2


def test_unrecognised_weights_without_description(tmp_path: Path, image: Path, capsys: pytest.CaptureFixture) -> None:
    from esc_basicsr.infer import main

    path = tmp_path / 'conv.pth'
    torch.save(torch.nn.Conv2d(3, 3, 3).state_dict(), path)
    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--weights', str(path), '--quiet']) == 2
    err = capsys.readouterr().err
    assert 'not recognised' in err and 'ESCRealM' in err
