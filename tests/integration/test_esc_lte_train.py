"""ESC-LTE in BasicSR: the LIIF dataset, the MATLAB-bicubic resize to any size, non-integer benchmark
folders from ``prepare``, a few iterations of ``python -m basicsr.train`` from options/train_ESC_LTE.yml,
and testing at a non-integer scale through BasicSR's test pipeline."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata

import basicsr
import esc_basicsr  # noqa: F401
from esc_basicsr import prepare
from esc_basicsr.archs.esc_lte_arch import ESCLTE
from esc_basicsr.data_prep.benchmark_sets import lr_size
from esc_basicsr.integration.data.liif_dataset import ArbitraryScalePairedDataset, LIIFDataset
from esc_basicsr.integration.models.lte_model import LTEModel
from esc_basicsr.utils.matlab_resize import imresize_to

from tests.conftest import REPO
from tests.conftest import TINY_ESC_LTE as TINY
from tests.integration.helpers import load_options, remove_experiment, reset_basicsr_logger, write_options


def test_registered_in_basicsr() -> None:
    """esc_basicsr's BasicSR hook registers the network, both datasets and the model."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

    for registry, cls in ((ARCH_REGISTRY, ESCLTE), (DATASET_REGISTRY, LIIFDataset),
                          (DATASET_REGISTRY, ArbitraryScalePairedDataset), (MODEL_REGISTRY, LTEModel)):
        assert registry.get(cls.__name__) is cls, cls.__name__


def bgr(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('lte_data')
    hr, bench = root / 'hr', root / 'bench_hr'
    hr.mkdir()
    bench.mkdir()
    cv2.imwrite(str(hr / 'a.png'), bgr(skdata.astronaut())[:96, :128])
    cv2.imwrite(str(hr / 'b.png'), bgr(skdata.coffee())[100:196, 200:296])
    cv2.imwrite(str(bench / 'c.png'), bgr(skdata.chelsea())[:36, :48])
    cv2.imwrite(str(bench / 'd.png'), skdata.camera()[200:248, 200:236])
    assert prepare.main(['benchmark', '--hr', str(bench), '--out', str(root / 'Set5'), '--scales', '2.5', '8',
                         '--workers', '1']) == 0
    return {'hr': hr, 'set5': root / 'Set5'}


# ----------------------------------------------------------------------------------------- data
def test_imresize_to_matches_basicsr_matlab_port_at_integer_scales() -> None:
    from basicsr.utils.matlab_functions import imresize

    img = skdata.astronaut()[:60, :84].astype(np.float32) / 255
    for s in (2, 3, 4):
        np.testing.assert_allclose(imresize_to(img, (60 // s, 84 // s)), imresize(img, 1 / s), atol=1e-5)
    np.testing.assert_allclose(imresize_to(img, (120, 168)), imresize(img, 2), atol=1e-5)
    flat = np.full((50, 70, 3), 0.3, np.float32)  # weights sum to one at any scale
    np.testing.assert_allclose(imresize_to(flat, (20, 28)), 0.3, atol=1e-6)


def test_prepare_non_integer_and_large_scales(data) -> None:
    gt = cv2.imread(str(data['set5'] / 'GTmod12' / 'c.png'))
    for s, folder in ((2.5, 'LRbicx2.5'), (8, 'LRbicx8')):
        lq = cv2.imread(str(data['set5'] / folder / 'c.png'))
        assert lq.shape[:2] == lr_size(*gt.shape[:2], s)
    lq = cv2.imread(str(data['set5'] / 'LRbicx2.5' / 'c.png')).astype(np.float32)
    h, w = lq.shape[:2]
    expected = imresize_to(gt[:round(2.5 * h), :round(2.5 * w)].astype(np.float32) / 255, (h, w)) * 255
    assert np.abs(lq - expected).max() <= 0.51  # 8-bit rounding only


def test_prepare_rejects_bad_scales(data, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        prepare.main(['benchmark', '--hr', str(data['hr']), '--out', str(tmp_path), '--scales', '0'])
    assert "invalid parse_scale value: '0'" in capsys.readouterr().err
    assert prepare.main(['div2k', '--hr', str(data['hr']), '--out', str(tmp_path), '--name', 'x',
                         '--scales', '2.5']) == 2
    assert 'must be integers' in capsys.readouterr().err


def test_liif_dataset_sample(data) -> None:
    ds = LIIFDataset({'dataroot_gt': str(data['hr']), 'io_backend': {'type': 'disk'}, 'lq_size': 16,
                      'scale_min': 2.5, 'scale_max': 2.5, 'sample_q': None, 'use_hflip': False, 'use_rot': False})
    item = ds[0]
    assert item['lq'].shape == (3, 16, 16) and item['scale'] == 2.5
    assert item['gt'].shape == item['coord'].shape[:1] + (3,) == (40 * 40, 3)
    assert torch.allclose(item['cell'], torch.tensor([2 / 40, 2 / 40]).expand(1600, 2))
    hr = item['gt'].t().reshape(3, 40, 40)  # every pixel, row-major: the HR crop itself
    lq = np.clip(imresize_to(hr.permute(1, 2, 0).numpy(), (16, 16)), 0, 1)  # 8-bit: rounded and clipped
    assert np.abs(item['lq'].permute(1, 2, 0).numpy() - lq).max() <= 0.5 / 255 + 1e-6
    assert item['coord'].min() > -1 and item['coord'].max() < 1
    assert torch.allclose(item['coord'][41], torch.tensor([-1 + 3 / 40, -1 + 3 / 40]))  # pixel (1, 1)


def test_liif_dataset_random_scales_and_sampling(data) -> None:
    ds = LIIFDataset({'dataroot_gt': str(data['hr']), 'io_backend': {'type': 'disk'}, 'lq_size': 16,
                      'sample_q': 100})
    scales = set()
    for i in range(6):
        item = ds[i % len(ds)]
        scales.add(item['scale'])
        assert item['gt'].shape == (100, 3) and item['coord'].shape == item['cell'].shape == (100, 2)
        assert len({tuple(c) for c in item['coord'].tolist()}) == 100  # without replacement
        assert 1 <= item['scale'] <= 4
    assert len(scales) > 1


def test_liif_dataset_from_prepared_hr_lmdb(data, tmp_path) -> None:
    """The HR LMDB of `prepare div2k` (its LR LMDBs are not needed)."""
    assert prepare.main(['div2k', '--hr', str(data['hr']), '--out', str(tmp_path), '--name', 'T', '--scales', '2',
                         '--crop-size', '64', '--step', '64', '--workers', '1']) == 0
    ds = LIIFDataset({'dataroot_gt': str(tmp_path / 'T_HR_sub.lmdb'), 'io_backend': {'type': 'lmdb'}, 'lq_size': 16,
                      'sample_q': 200})
    item = ds[len(ds) - 1]
    assert len(ds) == 8 and item['gt_path'] == 'b_s004'  # 64px sub-images, 4 per image (border crops included)
    assert item['lq'].shape == (3, 16, 16) and item['gt'].shape == (200, 3) and 1 <= item['scale'] <= 4


@pytest.mark.parametrize('opt, match', [
    ({'sample_q': 10 ** 6}, 'sample_q'),
    ({'scale_min': 3, 'scale_max': 2}, 'scale_min'),
    ({'lq_size': 64, 'scale_min': 2}, 'smaller than the HR crop'),
])
def test_liif_dataset_errors(data, opt, match) -> None:
    with pytest.raises(ValueError, match=match):
        LIIFDataset({'dataroot_gt': str(data['hr']), 'lq_size': 16, **opt})[0]


# ----------------------------------------------------------------------------------------- pipelines
def tiny_train_options(data: dict[str, Path], name: str) -> dict:
    """options/train_ESC_LTE.yml with only the data paths, sizes and iteration count changed."""
    opt = load_options('train_ESC_LTE.yml')
    opt['name'] = name
    opt['num_gpu'] = 0
    train = opt['datasets']['train']
    train.update(dataroot_gt=str(data['hr']), io_backend={'type': 'disk'}, lq_size=16, sample_q=64,
                 batch_size_per_gpu=2, num_worker_per_gpu=0)
    val = opt['datasets']['val_1']
    assert val['scale'] == 2.5
    val.update(dataroot_gt=str(data['set5'] / 'GTmod12'), dataroot_lq=str(data['set5'] / 'LRbicx2.5'))
    del opt['datasets']['val_2']
    opt['network_g'].update(TINY)
    opt['train']['total_iter'] = 3
    opt['val'].update(val_freq=3, save_img=True)
    opt['logger'].update(print_freq=1, save_checkpoint_freq=3, use_tb_logger=False)
    return opt


@pytest.mark.slow
def test_python_m_basicsr_train_then_test_at_2_5(data, tmp_path) -> None:
    """`python -m basicsr.train` (experiments/ under site-packages with a pip-installed BasicSR), then
    `python -m esc_basicsr.test` at x2.5 with BasicSR's PSNR/SSIM and saved images."""
    name = f'esc_basicsr_test_lte_{uuid.uuid4().hex[:8]}'
    root = Path(basicsr.__file__).resolve().parents[1]
    exp = root / 'experiments' / name
    opt_file = write_options(tiny_train_options(data, name), tmp_path / 'train.yml')
    cmd = [sys.executable, '-m', 'basicsr.train', '-opt', str(opt_file)]
    try:
        run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-3000:]
        log = next(exp.glob(f'train_{name}_*.log')).read_text()
        assert re.search(r'iter:\s+3, lr', log) and 'Set5_x2.5: x2.5' in log
        assert re.search(r'# psnr: \d+\.\d+', log) and re.search(r'# ssim: 0\.\d+', log)
        weights = exp / 'models' / 'net_g_3.pth'
        assert set(torch.load(weights, weights_only=True)) == {'params', 'params_ema'}
        assert 'c_3.png' in {p.name for p in (exp / 'visualization' / 'c').iterdir()}  # (and BasicSR's final one)
        sr = cv2.imread(str(exp / 'visualization' / 'c' / 'c_3.png'))
        lq = cv2.imread(str(data['set5'] / 'LRbicx2.5' / 'c.png'))
        assert sr.shape[:2] == (round(2.5 * lq.shape[0]), round(2.5 * lq.shape[1]))
        shutil.copy(weights, tmp_path / 'net.pth')
    finally:
        remove_experiment(root, name)

    from esc_basicsr.integration.pipelines import test as run_test

    test_opt = load_options('test_ESC_LTE_x2.yml')
    test_opt.update(name='lte_x2.5', scale=2.5, num_gpu=0)
    test_opt['network_g'].update(TINY)
    test_opt['datasets'] = {'test_1': dict(test_opt['datasets']['test_1'], dataroot_gt=str(data['set5'] / 'GTmod12'),
                                           dataroot_lq=str(data['set5'] / 'LRbicx2.5'))}
    test_opt['path']['pretrain_network_g'] = str(tmp_path / 'net.pth')
    for metric in test_opt['val']['metrics'].values():
        metric['crop_border'] = 'scale'
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        reset_basicsr_logger()
        run_test(['-opt', str(write_options(test_opt, tmp_path / 'test.yml'))])
    finally:
        os.chdir(cwd)
        reset_basicsr_logger()
    results = tmp_path / 'results' / 'lte_x2.5'
    assert sorted(p.name for p in (results / 'visualization' / 'Set5').iterdir()) == \
        ['c_lte_x2.5.png', 'd_lte_x2.5.png']
    log = next(results.glob('test_lte_x2.5_*.log')).read_text()
    assert re.search(r'# psnr: \d+\.\d+', log) and re.search(r'# ssim: 0\.\d+', log)


def test_paired_dataset_any_scale(data) -> None:
    opt = {'name': 'Set5', 'dataroot_gt': str(data['set5'] / 'GTmod12'), 'dataroot_lq': str(data['set5'] / 'LRbicx2.5'),
           'io_backend': {'type': 'disk'}, 'phase': 'val'}
    item = ArbitraryScalePairedDataset(dict(opt, scale=2.5))[0]
    h, w = item['lq'].shape[-2:]
    assert item['gt'].shape == (3, round(2.5 * h), round(2.5 * w))
    with pytest.raises(ValueError, match='does not match LR'):
        ArbitraryScalePairedDataset(dict(opt, scale=4))[0]
    with pytest.raises(ValueError, match='scale must be a finite number > 0'):
        ArbitraryScalePairedDataset(dict(opt, scale=-2))


def test_model_rejects_gt_that_does_not_match_the_scale(tmp_path) -> None:
    from basicsr.models import build_model

    opt = {'model_type': 'LTEModel', 'num_gpu': 0, 'is_train': False, 'dist': False, 'rank': 0, 'world_size': 1,
           'scale': 2.5, 'network_g': dict(type='ESCLTE', **TINY), 'path': {'pretrain_network_g': None},
           'val': {}}
    model = build_model(opt)
    model.feed_data({'lq': torch.rand(1, 3, 10, 12), 'gt': torch.rand(1, 3, 25, 30), 'lq_path': ['x.png']})
    model.test()
    assert model.output.shape == (1, 3, 25, 30)
    model.feed_data({'lq': torch.rand(1, 3, 10, 12), 'gt': torch.rand(1, 3, 27, 32), 'lq_path': ['x.png']})
    model.test()  # GT a little larger (prepare's non-integer pairs): aligned to its top-left
    assert model.gt.shape == model.output.shape == (1, 3, 25, 30)
    model.feed_data({'lq': torch.rand(1, 3, 10, 12), 'gt': torch.rand(1, 3, 40, 48), 'lq_path': ['x.png']})
    with pytest.raises(ValueError, match=r'x.png: GT 40x48 does not match LR 10x12 at scale 2.5'):
        model.test()
    model.opt['scale'] = 0
    with pytest.raises(ValueError, match='scale must be a finite number > 0'):
        model.test()
