"""BasicSR's real train and test pipelines on the repo's option files (tiny network, tiny data built
with ``esc_basicsr.prepare``), and the x2 -> x3 fine-tuning load of the option files."""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import cv2
import pytest
import torch
import yaml
from basicsr.utils.options import ordered_yaml
from skimage import data as skdata

from esc_basicsr import prepare

REPO = Path(__file__).resolve().parents[1]
TINY_ESC = dict(dim=16, pdim=4, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2)


def load_options(name: str) -> dict:
    with open(REPO / 'options' / name) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def plain(obj):
    """OrderedDicts -> dicts (for yaml.safe_dump)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


def write_options(opt: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(plain(opt), sort_keys=False))
    return path


def make_data(root: Path) -> dict[str, Path]:
    """Tiny DIV2K-like LMDBs (x2, x3) and a tiny benchmark folder, made with the prepare CLI."""
    hr, bench = root / 'hr', root / 'bench_hr'
    hr.mkdir(parents=True)
    bench.mkdir()
    astronaut = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(hr / 'a.png'), astronaut[:144, :192])
    cv2.imwrite(str(hr / 'b.png'), cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR)[:96, :144])
    cv2.imwrite(str(bench / 'c.png'), cv2.cvtColor(skdata.chelsea(), cv2.COLOR_RGB2BGR)[:36, :48])
    cv2.imwrite(str(bench / 'd.png'), skdata.camera()[200:248, 200:236])
    out = root / 'datasets'
    assert prepare.main(['div2k', '--hr', str(hr), '--out', str(out / 'DIV2K'), '--name', 'DIV2K_train',
                         '--scales', '2', '3', '--crop-size', '48', '--step', '48', '--workers', '1']) == 0
    assert prepare.main(['benchmark', '--hr', str(bench), '--out', str(out / 'Set5'), '--scales', '2', '3',
                         '--workers', '1']) == 0
    return {'gt': out / 'DIV2K' / 'DIV2K_train_HR_sub.lmdb',
            'lq2': out / 'DIV2K' / 'DIV2K_train_LR_bicubic_X2_sub.lmdb', 'set5': out / 'Set5'}


def tiny_train_options(data: dict[str, Path], name: str, total_iter: int, checkpoint_freq: int) -> dict:
    """options/train_ESC_x2.yml made CPU-sized: tiny network and data, a few iterations."""
    opt = load_options('train_ESC_x2.yml')
    opt['name'] = name
    opt['num_gpu'] = 0
    train = opt['datasets']['train']
    train.update(dataroot_gt=str(data['gt']), dataroot_lq=str(data['lq2']), gt_size=32, batch_size_per_gpu=2,
                 num_worker_per_gpu=0, prefetch_mode=None, pin_memory=False)
    val = opt['datasets']['val']
    val.update(dataroot_gt=str(data['set5'] / 'GTmod12'), dataroot_lq=str(data['set5'] / 'LRbicx2'))
    opt['network_g'].update(TINY_ESC)
    opt['train'].update(total_iter=total_iter, warmup_iter=2)
    opt['train']['scheduler']['milestones'] = [2, 3]  # exercises MultiStepLR's Counter state on resume
    opt['val']['val_freq'] = 10 ** 6  # validate only at the end of training
    opt['logger'].update(print_freq=1, save_checkpoint_freq=checkpoint_freq, use_tb_logger=False)
    return opt


def reset_basicsr_logger() -> None:
    """BasicSR configures its 'basicsr' logger once per process; let the next in-process run log to its own file."""
    from basicsr.utils import logger as basicsr_logger
    basicsr_logger.initialized_logger.pop('basicsr', None)
    log = logging.getLogger('basicsr')
    for handler in list(log.handlers):
        if isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
            handler.close()


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


def test_demo_setup_starts_as_nearest_neighbour(tmp_path):
    """The demo's packaged option files install into a work folder, and its initial weights (ESC-light,
    zero output convolution) make the network start as nearest-neighbour upscaling."""
    from basicsr.archs import build_network

    from esc_basicsr import demo
    from esc_basicsr.tools.demo import install_options

    install_options(tmp_path, (demo.TRAIN_OPT, demo.TEST_OPT))
    opt = yaml.safe_load((tmp_path / 'options' / demo.TRAIN_OPT).read_text())
    assert opt['path']['pretrain_network_g'] == f'init/{demo.NAME}_init.pth'
    net = build_network(opt['network_g'])
    net.load_state_dict(torch.load(demo.initial_weights(tmp_path), weights_only=True)['params'])
    x = torch.rand(1, 3, 12, 20)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), x.repeat_interleave(2, -1).repeat_interleave(2, -2))
    plan = demo.plan_training(tmp_path, minutes=1, iters=10)
    assert plan['total_iter'] == demo.MIN_ITERS and (tmp_path / 'demo_plan.json').is_file()


@pytest.mark.parametrize('minutes, iters, step, expected', [
    (None, None, 1.0, 400),   # default: a fixed count, the same schedule on every normal machine
    (None, None, 2.0, 290),   # slow machine: what fits in 11 min ((660 - 20) / (2.0 * 1.1))
    (None, None, 20.0, 150),  # never below the count that reliably beats bicubic
    (3.0, None, 1.0, 150),    # an explicit budget: (180 - 20) / 1.1 = 145 -> the floor, 150
    (20.0, None, 1.0, 1072),  # a longer budget trains longer ((1200 - 20) / 1.1)
    (None, 1000, None, 1000),  # an explicit count is not timed
])
def test_demo_plan(tmp_path, minutes, iters, step, expected):
    from esc_basicsr import demo

    def step_seconds(_):
        assert step is not None, 'an explicit --iters must not time a step'
        return step

    plan = demo.plan_training(tmp_path, minutes, iters, step_seconds=step_seconds)
    assert plan['total_iter'] == expected
    assert plan['warmup_iter'] == max(15, expected // 10) and 0.9 <= plan['ema_decay'] <= 0.999
    # kept for a resumed run, even if called with other arguments
    assert demo.plan_training(tmp_path, None, 5, step_seconds=step_seconds) == plan


@pytest.mark.parametrize('argv, message', [(['--iters', '0'], 'must be positive'),
                                           (['--minutes', '-1'], 'must be positive'),
                                           (['--iters', '10', '--minutes', '5'], 'not both')])
def test_demo_rejects_bad_arguments(argv, message, tmp_path, capsys):
    from esc_basicsr import demo

    with pytest.raises(SystemExit) as exc:
        demo.main(['--workdir', str(tmp_path / 'w')] + argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'w').exists()  # nothing written before the arguments are checked
