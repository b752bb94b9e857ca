"""Every option file parses, agrees with its preset, builds, and follows the data layout (docs/data.md).

The preset comes from the file name: ``{train,test}_<Variant>_x<s>[_stage<k>].yml`` with Variant in
ESC, ESC_light, ESC_FP, ESC_XL, ESC_Real, ESC_RealM, ESC_RIB, ELAN, ELAN_light (-> ``esc``, ``esc_light``, ...).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from basicsr.utils.options import ordered_yaml

from esc_basicsr.archs.presets import PRESETS, network_g
from esc_basicsr.archs.table import ARCHITECTURES

from tests.conftest import REPO

# fixed-scale networks; the arbitrary-scale ESC-LTE files (one checkpoint, any scale) are checked apart
OPTION_FILES = sorted(p for p in (REPO / 'options').glob('*.yml') if '_LTE' not in p.stem)
DEMO_FILES = sorted(p for p in (REPO / 'esc_basicsr' / 'options').glob('*.yml') if '_LTE' not in p.stem)
LTE_FILES = sorted((REPO / 'options').glob('*_LTE*.yml'))  # the LTE demo trains a smaller encoder on purpose
ESC_FILES = [p for p in OPTION_FILES if '_ESC' in p.stem]
BENCHMARKS = ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']
REAL_WORLD_PRESETS = ('esc_real', 'esc_realm')  # two stages (L1, then GAN), tested on real LR images
NAME_RE = re.compile(r'^(?:demo_)?(?:train_|test_)?(?P<variant>[A-Za-z_]+?)_x(?P<scale>\d)(?:_stage(?P<stage>\d))?$')


def load(path: Path) -> dict:
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def parse_name(path: Path) -> tuple[str, int]:
    m = NAME_RE.match(path.stem)
    assert m, f'{path.name}: name does not follow <kind>_<Variant>_x<scale>[_stage<k>].yml'
    preset = m['variant'].lower()
    assert preset in PRESETS, f'{path.name}: no preset {preset!r}'
    return preset, int(m['scale'])


def test_expected_esc_files_exist():
    names = {p.name for p in OPTION_FILES}
    for variant in ('ESC', 'ESC_light', 'ESC_FP', 'ESC_XL', 'ESC_RIB'):
        for s in (2, 3, 4):
            assert f'train_{variant}_x{s}.yml' in names
            assert f'test_{variant}_x{s}.yml' in names
    assert {'train_ESC_Real_x4_stage1.yml', 'train_ESC_Real_x4_stage2.yml', 'test_ESC_Real_x4.yml'} <= names
    for s in (2, 4):  # ESCRealM, the authors' multi-scale real-world variant
        assert {f'train_ESC_RealM_x{s}_stage1.yml', f'train_ESC_RealM_x{s}_stage2.yml',
                f'test_ESC_RealM_x{s}.yml'} <= names


@pytest.mark.parametrize('path', OPTION_FILES + DEMO_FILES, ids=lambda p: p.name)
def test_network_matches_preset_and_builds(path):
    from basicsr.archs import build_network

    opt = load(path)
    preset, scale = parse_name(path)
    net = dict(opt['network_g'])
    expected = network_g(preset, scale)
    extra = set(net) - set(expected)
    assert extra <= ARCHITECTURES[expected['type']].option_extras, f'{path.name}: unexpected keys {extra}'
    assert {k: net[k] for k in expected} == expected, f'{path.name}: network_g differs from preset {preset!r}'
    assert opt['scale'] == scale == net[ARCHITECTURES[net['type']].scale_arg]
    model = build_network(net)  # through BasicSR's ARCH_REGISTRY
    assert type(model).__name__ == net['type']


@pytest.mark.parametrize('path', LTE_FILES, ids=lambda p: p.name)
def test_arbitrary_scale_network_matches_preset_and_builds(path):
    from basicsr.archs import build_network

    net = dict(load(path)['network_g'])
    expected = network_g('esc_lte', 1)  # no scale argument: the scale is chosen per query
    extra = set(net) - set(expected)
    assert extra <= ARCHITECTURES['ESCLTE'].option_extras, f'{path.name}: unexpected keys {extra}'
    assert {k: net[k] for k in expected} == expected, f'{path.name}: network_g differs from preset esc_lte'
    assert type(build_network(net)).__name__ == 'ESCLTE'
    if path.stem.startswith('test_'):
        assert load(path)['val']['pbar'] is True, path.name


def _check_metrics(opt: dict, scale: int, name: str) -> None:
    metrics = opt['val']['metrics']
    assert set(metrics) == {'psnr', 'ssim'}, name
    for m in metrics.values():
        assert m['crop_border'] == scale and m['test_y_channel'] is True, name


@pytest.mark.parametrize('path', OPTION_FILES, ids=lambda p: p.name)
def test_data_layout(path):
    """Dataset paths follow docs/data.md: DIV2K/DF2K LMDBs for training, <Set>/GTmod12 + LRbicx<s>."""
    opt = load(path)
    _, scale = parse_name(path)
    for phase, ds in opt['datasets'].items():
        if ds['type'] == 'PairedImageDataset' and phase == 'train':
            m = re.fullmatch(r'datasets/(DIV2K|DF2K)/\1_train_HR_sub\.lmdb', ds['dataroot_gt'])
            assert m, f'{path.name}: {ds["dataroot_gt"]}'
            data = m[1]
            assert ds['dataroot_lq'] == f'datasets/{data}/{data}_train_LR_bicubic_X{scale}_sub.lmdb', path.name
            assert ds['io_backend']['type'] == 'lmdb' and ds['name'] == data
        elif ds['type'] == 'PairedImageDataset':
            assert ds['name'] in BENCHMARKS, path.name
            assert ds['dataroot_gt'] == f'datasets/{ds["name"]}/GTmod12', path.name
            assert ds['dataroot_lq'] == f'datasets/{ds["name"]}/LRbicx{scale}', path.name
            assert ds['io_backend']['type'] == 'disk'
        elif ds['type'] == 'RealESRGANDataset':
            assert ds['dataroot_gt'] == 'datasets/DF2K/DF2K_train_HR_sub.lmdb' and ds['io_backend']['type'] == 'lmdb'
        elif ds['type'] == 'SingleImageDataset':
            assert ds['dataroot_lq'] == 'datasets/RealSRSet' and 'metrics' not in opt['val']
        else:
            pytest.fail(f'{path.name}: unexpected dataset type {ds["type"]}')
    if path.stem.startswith('test_') and opt['datasets']['test_1']['type'] == 'PairedImageDataset':
        assert [d['name'] for d in opt['datasets'].values()] == BENCHMARKS, path.name
    if opt.get('val', {}).get('metrics'):
        _check_metrics(opt, scale, path.name)
    if path.stem.startswith('test_'):  # BasicSR's progress bar: a test set of 100 images shows it is running
        assert opt['val']['pbar'] is True, path.name


@pytest.mark.parametrize('path', ESC_FILES, ids=lambda p: p.name)
def test_esc_recipe_and_links(path):
    """The paper's recipe in every ESC file; fine-tuning and test files point at the right checkpoints."""
    opt = load(path)
    preset, scale = parse_name(path)
    stem = path.stem
    name = stem.split('_', 1)[1]
    assert opt['name'] == name
    if stem.startswith('test_'):
        trained = f'{name}_stage2' if preset in REAL_WORLD_PRESETS else name
        assert (REPO / 'options' / f'train_{trained}.yml').is_file()
        assert opt['path']['pretrain_network_g'] == f'experiments/{trained}/models/net_g_latest.pth'
        assert opt['path']['param_key_g'] == 'params_ema' and opt['path']['strict_load_g'] is True
        return
    train = opt['train']
    if preset in REAL_WORLD_PRESETS:
        stage = int(stem[-1])
        assert opt['model_type'] == ('RealESRNetModel' if stage == 1 else 'RealESRGANModel')
        assert opt['gt_size'] == opt['datasets']['train']['gt_size'] == 256 and train['ema_decay'] == 0.999
        if stage == 2:
            assert opt['network_d']['type'] == 'UNetDiscriminatorSN'
            assert {'pixel_opt', 'perceptual_opt', 'gan_opt'} <= set(train)
            stage1 = name.replace('_stage2', '_stage1')
            assert opt['path']['pretrain_network_g'] == f'experiments/{stage1}/models/net_g_latest.pth'
        return
    ds = opt['datasets']['train']
    assert opt['model_type'] == 'SRModel'
    assert ds['gt_size'] == 64 * scale and ds['use_hflip'] and ds['use_rot']
    assert train['optim_g'] == {'type': 'AdamW', 'lr': 5e-4, 'weight_decay': 0, 'betas': [0.9, 0.9]}
    assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': [250000, 400000, 450000, 475000, 490000],
                                  'gamma': 0.5}
    assert train['total_iter'] == 500000 and train['warmup_iter'] == 20000 and train['ema_decay'] == 0.999
    assert train['pixel_opt']['type'] == 'L1Loss'
    assert ds['batch_size_per_gpu'] == 16  # x 4 GPUs = the paper's 64 (docs/training.md)
    assert opt['datasets']['val']['name'] == 'Set5'
    assert ('DF2K' in ds['dataroot_gt']) == (preset == 'esc_xl')
    if scale == 2:
        assert opt['path']['pretrain_network_g'] is None
    else:  # fine-tuned from the x2 model of the same variant
        x2 = name.replace(f'_x{scale}', '_x2')
        assert opt['path']['pretrain_network_g'] == f'experiments/{x2}/models/net_g_latest.pth'
        assert opt['path']['param_key_g'] == 'params_ema' and opt['path']['strict_load_g'] is True


def test_readme_architecture_table_is_generated_from_the_table():
    from esc_basicsr.tools.arch_docs import END, START, architecture_table

    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    block = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == architecture_table(), 'run: python -m esc_basicsr.tools.arch_docs --write README.md'
    assert '| x2 946,728 / x3 955,383 / x4 967,500 |' in block  # the paper's Table 2 (ESC)
