"""ELAN / ELAN-light: reference-fixture equality, parameter counts, BatchNorm folding on the fixture's
weights, the input-range option, checkpoint conversion and the option files (CPU).

Sizes, batches, gradients, state_dict round trips, folding and export of every preset:
tests/archs/test_table_harness.py."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

import esc_basicsr  # noqa: F401  (registers the architectures)
from basicsr.utils.registry import ARCH_REGISTRY
from esc_basicsr.archs import presets
from esc_basicsr.archs.deploy import deploy
from esc_basicsr.archs.elan_arch import ELAN, convert_authors_checkpoint, fold_batchnorm

from tests.conftest import REPO, load_fixture

# small but complete: 2 ELAB blocks (one regular, one shifted), each with one shared GMSA
TINY = dict(scale=2, rgb_range=255, colors=3, m_elan=4, c_elan=15, n_share=1, r_expand=2, act_type='relu',
            window_sizes=[2, 4, 8])


@pytest.fixture(scope='module')
def fixture() -> dict:
    return load_fixture('elan_light_x4.pt')


@torch.no_grad()
def _calibrate_bn(model: ELAN) -> ELAN:
    """Give the BatchNorms the statistics of real features (one train-mode pass), as a trained
    checkpoint has. With the initial 0/1 statistics, eval-mode q.q^T logits of [0, 255] inputs
    reach ~1e4 and float32 rounding noise is amplified to ~1e-3 (float64 agrees exactly)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass sets the batch statistics
    model.train()(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 255)
    for m in norms:
        m.momentum = 0.1
    return model.eval()


@pytest.fixture(scope='module')
def tiny() -> ELAN:
    torch.manual_seed(0)
    return _calibrate_bn(ELAN(**TINY))


def _randomize_bn_statistics(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def test_fixture_strict_load_and_output(fixture):
    model = ARCH_REGISTRY.get('ELAN')(**fixture['kwargs'])
    model.load_state_dict(fixture['state_dict'], strict=True)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == fixture['num_params'] == 601_488
    # outputs are in [0, rgb_range = 255]: float32 rounds at ~3e-5 there, so float32 is checked
    # within 1e-5 x rgb_range of the reference's float64 output (the fixtures' README)
    rgb_range = fixture['kwargs']['rgb_range']
    ref = fixture['output_float64']
    with torch.no_grad():
        out = model.eval()(fixture['input'].clone())
    assert out.shape == ref.shape
    assert (out.double() - ref).abs().max().item() <= 1e-5 * rgb_range
    with torch.no_grad():
        out64 = model.double()(fixture['input'].double())
    assert (out64 - ref).abs().max().item() <= 1e-6


def test_fixture_after_folding_batchnorm(fixture):
    model = ELAN(**fixture['kwargs'])
    model.load_state_dict(fixture['state_dict'], strict=True)
    folded = deploy(model.double())
    with torch.no_grad():
        out = folded(fixture['input'].double())
    assert (out - fixture['output_float64']).abs().max().item() <= 1e-6


@pytest.mark.parametrize('name,scale,expected', [
    ('elan_light', 2, 582_012), ('elan_light', 3, 590_127), ('elan_light', 4, 601_488),
    ('elan', 4, 8_312_448),
])
def test_parameter_counts(name, scale, expected):
    # paper: ELAN-light 582K/590K/601K (x2/x3/x4), ELAN 8.31M (x4); trainable parameters only
    model = presets.build(name, scale)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    assert all(p.requires_grad for p in model.parameters())  # frozen kernels are buffers


def test_fold_batchnorm_on_fixture_weights(fixture):
    model = ELAN(**fixture['kwargs'])
    model.load_state_dict(fixture['state_dict'])
    _randomize_bn_statistics(model)  # other statistics than the fixture's calibrated ones
    model = model.double().eval()
    x = fixture['input'][..., :8, :12].double()
    with torch.no_grad():
        ref = model(x)
        folded = deploy(copy.deepcopy(model))  # dispatches to fold_batchnorm for ELAN
        out = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert all('project_inp.1' not in k for k in folded.state_dict())
    assert (out - ref).abs().max() <= 1e-4
    assert fold_batchnorm(folded) is folded  # idempotent


def test_input_range_unit_images(tiny):
    unit = ELAN(**TINY, input_range=1.0).eval()
    unit.load_state_dict(tiny.state_dict(), strict=True)  # same keys: input_range is no weight
    x = torch.rand(1, 3, 10, 13)
    with torch.no_grad():
        ref = tiny(x * 255) / 255
        out = unit(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_constructor_rejects_unknown_and_unsupported_keys():
    with pytest.raises(TypeError):
        ELAN(**TINY, windows_size=[4, 8, 16])
    with pytest.raises(ValueError, match='ReLU'):
        ELAN(**dict(TINY, act_type='gelu'))
    with pytest.raises(ValueError):
        ELAN(**dict(TINY, c_elan=16))  # not divisible by the 3 window groups


def test_convert_authors_checkpoint(fixture, tiny):
    authors = {'epoch': 1000, 'model_state_dict': {f'module.{k}': v for k, v in fixture['state_dict'].items()},
               'optimizer_state_dict': {}, 'stat_dict': {}}
    converted = convert_authors_checkpoint(authors)
    ELAN(**fixture['kwargs']).load_state_dict(converted['params'], strict=True)
    assert convert_authors_checkpoint(tiny.state_dict())['params'].keys() == tiny.state_dict().keys()


OPTION_FILES = {
    'train_ELAN_light_x2.yml': ('elan_light', 2), 'train_ELAN_light_x3.yml': ('elan_light', 3),
    'train_ELAN_light_x4.yml': ('elan_light', 4), 'train_ELAN_x4.yml': ('elan', 4),
    'test_ELAN_light_x2.yml': ('elan_light', 2), 'test_ELAN_light_x3.yml': ('elan_light', 3),
    'test_ELAN_light_x4.yml': ('elan_light', 4), 'test_ELAN_x4.yml': ('elan', 4),
}


@pytest.mark.parametrize('filename', sorted(OPTION_FILES))
def test_option_files(filename):
    name, scale = OPTION_FILES[filename]
    opt = yaml.safe_load((Path(REPO) / 'options' / filename).read_text())
    assert opt['model_type'] == 'SRModel' and opt['scale'] == scale
    assert opt['network_g'] == presets.network_g(name, scale, input_range=1.0)
    for phase, ds in opt['datasets'].items():
        assert ds['type'] == 'PairedImageDataset'
        assert ds['dataroot_lq'].endswith(f'X{scale}_sub.lmdb' if phase == 'train' else f'LRbicx{scale}')
    for metric in opt['val']['metrics'].values():
        assert metric['crop_border'] == scale and metric['test_y_channel'] is True
    if filename.startswith('test_'):
        assert opt['path']['strict_load_g'] is True
        assert [ds['name'] for ds in opt['datasets'].values()] == ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']
    else:
        assert opt['train'].get('ema_decay', 0) == 0  # see the comment in the option files
    net = dict(opt['network_g'])
    model = ARCH_REGISTRY.get(net.pop('type'))(**net)
    assert model.input_range == 1.0 and model.rgb_range == 255
