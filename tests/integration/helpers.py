"""Shared helpers of the BasicSR-side tests: option files made CPU-sized, tiny data sets built with
``esc_basicsr.prepare``, and a reset of BasicSR's once-per-process logger."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import yaml
from basicsr.utils.options import ordered_yaml
from skimage import data as skdata

from esc_basicsr import prepare
from tests.conftest import REPO

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


def remove_experiment(root: Path, name: str) -> None:
    """Remove what ``python -m basicsr.train`` rooted at ``root`` wrote for experiment ``name`` (its folder,
    ``*_archived_*`` copies, its tb_logger folder), then ``experiments/`` and ``tb_logger/`` if left empty."""
    for path in root.glob(f'experiments/{name}*'):
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(root / 'tb_logger' / name, ignore_errors=True)
    for folder in (root / 'experiments', root / 'tb_logger'):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
