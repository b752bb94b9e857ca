"""Early, clear errors for option files, before BasicSR creates (or archives) an experiment folder.

BasicSR 1.4.2 finds a missing dataset folder only when the dataset is built (after the experiment
folder was made or renamed to ``_archived_``), and a missing ``pretrain_network_*`` only when the
model loads it. The ``parse_options`` wrapper checks every ``dataroot_gt``/``dataroot_lq``/
``meta_info_file`` of a ``disk``/``lmdb`` dataset (LMDBs also need ``data.mdb`` and
``meta_info.txt``) and every ``pretrain_network_*`` (unless training resumes) right after parsing,
naming the option file, the dataset and the path. It also hands ``load_resume_state`` of a
``python -m basicsr.train`` main to :mod:`.resume`.
"""
from __future__ import annotations

import functools
import os
import sys
from os import path as osp
from typing import Callable

from ...utils.options import check_scale_agreement
from ._patching import is_ours, marked, replace
from .resume import patch_resume_modules, state_iters


class DatasetPathError(FileNotFoundError):
    """A dataset path of an option file does not exist."""


class PretrainPathError(FileNotFoundError):
    """A ``pretrain_network_*`` path of an option file does not exist (and training does not resume)."""


def check_dataset_paths(opt: dict, opt_file: str = '?') -> None:
    """Raise ``DatasetPathError`` naming the first missing data path of a ``disk``/``lmdb`` dataset."""
    for phase, dataset in (opt.get('datasets') or {}).items():
        backend = (dataset.get('io_backend') or {}).get('type', 'disk')
        if backend not in ('disk', 'lmdb'):
            continue
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file', 'meta_info'):
            path = dataset.get(key)
            if not isinstance(path, str) or not path:
                continue
            where = f'{opt_file}: datasets.{phase}.{key} ({dataset.get("name", phase)})'
            if not osp.exists(path):
                raise DatasetPathError(f'{where}: {path!r} does not exist (relative paths are resolved from '
                                       f'{os.getcwd()}; see docs/data.md for the expected layout).')
            if backend == 'lmdb' and key.startswith('dataroot'):
                for needed in ('data.mdb', 'meta_info.txt'):
                    if not osp.isfile(osp.join(path, needed)):
                        raise DatasetPathError(f'{where}: {path!r} is not a complete LMDB ({needed} is missing); '
                                               'rebuild it with "python -m esc_basicsr.prepare".')


def _will_resume(opt: dict) -> bool:
    if not opt.get('is_train'):
        return False
    if opt.get('auto_resume'):
        state_dir = opt['path'].get('training_states', '')
        return osp.isdir(state_dir) and bool(state_iters(state_dir))
    return bool(opt['path'].get('resume_state'))


def check_pretrain_paths(opt: dict, opt_file: str = '?') -> None:
    """Raise ``PretrainPathError`` for a missing ``path.pretrain_network_*`` file, unless training
    resumes (BasicSR then loads ``net_*_<iter>.pth`` of the experiment instead)."""
    if _will_resume(opt):
        return
    for key, path in (opt.get('path') or {}).items():
        if key.startswith('pretrain_network') and isinstance(path, str) and path and not osp.isfile(path):
            raise PretrainPathError(f'{opt_file}: path.{key} {path!r} does not exist (relative paths are resolved '
                                    f'from {os.getcwd()}; see docs/training.md).')


# options that only esc_basicsr's ESRModel reads (BasicSR's models would ignore them silently)
ESR_MODEL_OPTIONS = ('use_amp', 'amp_dtype', 'train.gradient_clip', 'train.reset_momentum_iter')


def check_model_options(opt: dict, opt_file: str = '?') -> None:
    """Raise ``ValueError`` when an option of the authors' ``ESRModel`` (mixed precision, gradient
    clipping, momentum reset) is set while ``model_type`` is a model that would ignore it."""
    model_type = opt.get('model_type')
    if model_type == 'ESRModel' or not opt.get('is_train', True):
        return
    for key in ESR_MODEL_OPTIONS:
        section, _, name = key.rpartition('.')
        holder = opt.get(section) if section else opt
        if isinstance(holder, dict) and holder.get(name) not in (None, False):
            raise ValueError(f'{opt_file}: {key} is read by model_type ESRModel (the authors\' model, '
                             f'docs/training.md); {model_type} would ignore it. Set model_type: ESRModel '
                             f'or remove {key}.')


def _wrap_parse_options(original: Callable) -> Callable:
    @functools.wraps(original)
    def parse_options(root_path: str, is_train: bool = True):
        opt, args = original(root_path, is_train=is_train)
        check_dataset_paths(opt, getattr(args, 'opt', '?'))
        check_scale_agreement(opt, getattr(args, 'opt', '?'))  # network_g scale == top-level scale
        check_pretrain_paths(opt, getattr(args, 'opt', '?'))
        check_model_options(opt, getattr(args, 'opt', '?'))
        patch_resume_modules()
        return opt, args

    return marked(parse_options, original)


def install() -> None:
    """Wrap ``basicsr.utils.options.parse_options`` and the copies already bound by the pipelines."""
    import basicsr.utils.options as options

    replace(options, 'parse_options', _wrap_parse_options)
    wrapper = options.parse_options
    if is_ours(wrapper):
        # the already-imported pipeline modules bound the original at import time
        for name in ('basicsr.train', 'basicsr.test'):
            module = sys.modules.get(name)
            if module is not None and getattr(module, 'parse_options', None) is wrapper.__wrapped__:
                module.parse_options = wrapper
