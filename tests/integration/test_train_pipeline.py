"""BasicSR's real train and test pipelines on the repo's option files (tiny network, tiny data built
with ``esc_basicsr.prepare``), and the x2 -> x3 fine-tuning load of the option files (the demo's set-up:
tests/tools/test_demo.py)."""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import cv2
import pytest
import torch

from tests.integration.helpers import TINY_ESC, load_options, make_data, reset_basicsr_logger, tiny_train_options, \
    write_options


@pytest.fixture()
def fresh_basicsr_logger():
    reset_basicsr_logger()
    yield reset_basicsr_logger
    reset_basicsr_logger()


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict[str, Path]:
    return make_data(tmp_path_factory.mktemp('data'))


def test_train_then_test_pipeline(data, tmp_path, monkeypatch, fresh_basicsr_logger):
    from esc_basicsr import test as esc_test
    from esc_basicsr import train as esc_train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', sys.argv[:1])
    opt_file = write_options(tiny_train_options(data, 'pipeline_x2', total_iter=3, checkpoint_freq=3),
                             tmp_path / 'train.yml')
    esc_train.main(['-opt', str(opt_file)])
    exp = tmp_path / 'experiments' / 'pipeline_x2'  # under the current directory, not site-packages
    assert (exp / 'models' / 'net_g_3.pth').is_file() and (exp / 'training_states' / '3.state').is_file()
    checkpoint = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)
    assert set(checkpoint) == {'params', 'params_ema'}
    log = next(exp.glob('train_pipeline_x2_*.log')).read_text()
    assert 'Validation Set5' in log and re.search(r'# psnr: \d+\.\d+', log)

    test_opt = load_options('test_ESC_x2.yml')
    test_opt['num_gpu'] = 0
    test_opt['network_g'].update(TINY_ESC)
    test_opt['datasets'] = {'test_1': dict(test_opt['datasets']['test_1'], dataroot_gt=str(data['set5'] / 'GTmod12'),
                                           dataroot_lq=str(data['set5'] / 'LRbicx2'))}
    test_opt['path']['pretrain_network_g'] = str(exp / 'models' / 'net_g_latest.pth')
    fresh_basicsr_logger()
    esc_test.main(['-opt', str(write_options(test_opt, tmp_path / 'test.yml'))])
    results = tmp_path / 'results' / 'ESC_x2'
    assert sorted(p.name for p in (results / 'visualization' / 'Set5').iterdir()) == ['c_ESC_x2.png', 'd_ESC_x2.png']
    sr = cv2.imread(str(results / 'visualization' / 'Set5' / 'c_ESC_x2.png'))
    assert sr.shape == cv2.imread(str(data['set5'] / 'GTmod12' / 'c.png')).shape
    test_log = next(results.glob('test_ESC_x2_*.log')).read_text()
    assert 'Loading ESC model from' in test_log and 'params_ema' in test_log
    assert re.search(r'# psnr: \d+\.\d+', test_log) and re.search(r'# ssim: 0\.\d+', test_log)


def test_x3_fine_tuning_loads_x2_weights_strictly(data, tmp_path, caplog):
    """options/train_ESC_x3.yml's path settings (x2 params_ema, strict_load_g: true) work: ESC resizes the
    sub-pixel layer while loading and says so in the log; everything else is copied exactly."""
    from basicsr.archs import build_network
    from basicsr.models import build_model

    x2 = build_network(dict(load_options('train_ESC_x2.yml')['network_g'], **TINY_ESC))
    ema = {k: v + 0.01 for k, v in x2.state_dict().items()}
    torch.save({'params': x2.state_dict(), 'params_ema': ema}, tmp_path / 'net_g_latest.pth')

    opt = load_options('train_ESC_x3.yml')
    assert opt['path']['param_key_g'] == 'params_ema' and opt['path']['strict_load_g'] is True
    opt['network_g'].update(TINY_ESC)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'net_g_latest.pth')
    opt.update(num_gpu=0, is_train=True, dist=False, rank=0, world_size=1)
    with caplog.at_level(logging.INFO, logger='basicsr'):
        model = build_model(opt)
    assert 'Converting the sub-pixel output layer "to_img" from x2 to x3' in caplog.text
    for net in (model.net_g, model.net_g_ema):  # both start from the x2 EMA weights
        state = net.state_dict()
        assert state['to_img.weight'].shape[0] == 3 * 3 * 3
        for key, value in ema.items():
            if not key.startswith('to_img'):
                torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    assert type(model.optimizer_g).__name__ == 'AdamW'  # the recipe's optimizer on BasicSR 1.4.2
    assert model.optimizer_g.defaults['betas'] == (0.9, 0.9)
