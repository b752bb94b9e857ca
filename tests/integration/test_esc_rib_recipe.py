"""ESCRIB in BasicSR: its registry entry (the authors' fixtures through it, every CPU backend), and the
authors' test recipe (ESRModel pads the whole LR image to a multiple of the window before the network)
as the test option files run it, with the fixture's weights loaded through BasicSR's own loader."""
from __future__ import annotations

import pytest
import torch

import esc_basicsr  # noqa: F401  (registers the architectures in BasicSR)
from esc_basicsr.archs import ESCRIB, network_g
from esc_basicsr.layers.padding import pad_to_multiple
from tests.conftest import REPO, assert_reproduces_fixture, load_fixture


def test_registered_class_is_ours() -> None:
    from basicsr.utils.registry import ARCH_REGISTRY

    assert ARCH_REGISTRY.get('ESCRIB') is ESCRIB


@pytest.mark.parametrize('backend', ['naive', 'sdpa', 'flex', 'auto'])
@pytest.mark.parametrize('name', ['escrib_x2.pt', 'escrib_flashbias_x4_small.pt'])
def test_fixtures_through_the_registry(name: str, backend: str) -> None:
    """Built as BasicSR builds it (``ARCH_REGISTRY.get(type)(**network_g)``), strict loading, every CPU backend."""
    from basicsr.utils.registry import ARCH_REGISTRY

    fix = load_fixture(name)
    assert_reproduces_fixture(ARCH_REGISTRY.get(fix['arch'])(**fix['kwargs'], attn_backend=backend), fix)


def test_test_option_files_pad_as_the_authors() -> None:
    from esc_basicsr.utils.options import read_option_file

    for scale in (2, 3, 4):
        opt = read_option_file(REPO / 'options' / f'test_ESC_RIB_x{scale}.yml')
        assert opt['model_type'] == 'ESRModel' and dict(opt['network_g']) == network_g('esc_rib', scale)


def test_esrmodel_pads_the_whole_image(tmp_path) -> None:
    """ESRModel = reflect-pad the LR image to a multiple of window_size (64), run, crop: the authors'
    ESRModel.test. Their weights load strictly (params_ema) through BasicSR's loader."""
    from basicsr.models import build_model

    fix = load_fixture('escrib_x2.pt')
    torch.save({'params_ema': fix['state_dict']}, tmp_path / 'ESCRIB_x2.pth')
    opt = {'name': 'rib', 'model_type': 'ESRModel', 'scale': 2, 'num_gpu': 0, 'is_train': False, 'dist': False,
           'rank': 0, 'world_size': 1, 'network_g': dict(type='ESCRIB', **fix['kwargs']),
           'path': {'pretrain_network_g': str(tmp_path / 'ESCRIB_x2.pth'), 'param_key_g': 'params_ema',
                    'strict_load_g': True}}
    model = build_model(opt)
    model.lq = fix['input'].clone()  # 70 x 90: padded to 128 x 128
    model.test()
    net = model.net_g.eval()
    with torch.no_grad():
        expected = net(pad_to_multiple(fix['input'], 64))[..., :140, :180]
    assert model.output.shape == fix['output'].shape
    torch.testing.assert_close(model.output, expected, atol=1e-5, rtol=0)
    # net(input) (the fixture) pads inside each attention only: the results differ near the borders
    assert (model.output - fix['output']).abs().max() > 1e-3
