"""Fix of ``basicsr.utils.options.parse_options`` (BasicSR 1.4.2): option files checked, and made runnable
on this machine, before BasicSR creates (or archives) an experiment folder.

BasicSR 1.4.2 ends in a Python traceback for a malformed option file (invalid YAML, a missing ``name``,
``num_gpu`` or ``datasets``, an unknown network/model/dataset/loss type, a string where a number belongs),
often after the experiment folder was made; it finds a missing dataset folder only when the dataset is
built, a missing ``pretrain_network_*`` only when the model loads it, and CUDA-only settings only when
they run. The ``parse_options`` wrapper checks, before BasicSR parses the file, what its parser itself
needs (:func:`check_parsable`), and right after parsing (``--force_yml`` applied):

* on a machine without CUDA, turns the CUDA-only settings of a GPU option file into their CPU
  equivalents (:func:`adapt_to_cpu`: ``num_gpu`` > 0, ``prefetch_mode: cuda``, ``pin_memory``) and
  says so in one line; refuses early what has none (BasicSR's Real-ESRGAN models);
* checks every ``dataroot_gt``/``dataroot_lq``/``meta_info_file`` of a ``disk``/``lmdb`` dataset
  (LMDBs also need ``data.mdb`` and ``meta_info.txt``; paired folders need LR files named as
  ``filename_tmpl`` says) and reports every problem at once, naming the option file, the dataset
  and the path (:func:`check_dataset_paths`); ``ESC_BASICSR_SKIP_MISSING_SETS=1`` runs the
  validation/test sets that are present instead;
* refuses an ``ESC_BASICSR_*`` environment override that is not accepted (:func:`~esc_basicsr.layers.config.
  check_environment`), before the option file is read;
* checks every ``pretrain_network_*`` (unless training resumes), the scale agreement of ``network_g``,
  options of the authors' ``ESRModel`` set for another model, and the types and registered names the
  pipelines will use (:func:`check_structure`).

As a command (``python -m basicsr.train``, ``esc-train``..., :mod:`._command`) each failure is ``error:
...`` and exit code 2; called in-process it raises. The wrapper also hands ``load_resume_state`` (and
``mkdir_and_rename``) of a ``python -m basicsr.train`` main to their fixes.
"""
from __future__ import annotations

import functools
import os
import sys
from os import path as osp
from typing import Callable

from ...layers.config import check_environment
from ...utils.options import OptionFileError, check_scale_agreement, shown
from ._command import report
from ._cpu_options import CUDA_ONLY_MODELS, adapt_to_cpu, check_prefetch_mode
from ._dataset_paths import SKIP_MISSING_ENV, DatasetPathError, check_dataset_paths, dataset_problems, skippable
from ._option_structure import check_parsable, check_structure, option_file_argument, read_option_file
from ._patching import is_ours, marked, replace
from .resume import patch_resume_modules, state_iters

__all__ = ['CUDA_ONLY_MODELS', 'SKIP_MISSING_ENV', 'DatasetPathError', 'PretrainPathError', 'adapt_to_cpu',
           'check_dataset_paths', 'check_model_options', 'check_options', 'check_parsable', 'check_prefetch_mode',
           'check_pretrain_paths', 'check_structure', 'dataset_problems', 'install']


class PretrainPathError(FileNotFoundError):
    """A ``pretrain_network_*`` path of an option file does not exist (and training does not resume)."""


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
            raise PretrainPathError(f'{opt_file}: path.{key} {shown(path)} does not exist (relative paths are resolved '
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


def _say(opt: dict, message: str) -> None:
    """One line on stdout from the first process (BasicSR's logger is not set up yet: its log file
    is made in the experiment folder, after parsing)."""
    if opt.get('rank', 0) == 0:
        print(f'esc_basicsr: {message}', flush=True)


def check_options(opt: dict, opt_file: str = '?') -> None:
    """Everything above, in order: CPU equivalents, datasets, scale, pretrained paths, model options."""
    changes = adapt_to_cpu(opt, opt_file)
    if changes:
        _say(opt, f'no CUDA on this machine, so {opt_file} runs on the CPU: {", ".join(changes)}')
    check_prefetch_mode(opt, opt_file)
    skipped = check_dataset_paths(opt, opt_file)
    if skipped:
        kept = [d.get('name', p) for p, d in opt['datasets'].items() if skippable(p)]
        _say(opt, f'{SKIP_MISSING_ENV}: left out {", ".join(skipped)} (missing or unreadable, see docs/data.md); '
                  f'running {", ".join(kept) or "no validation"}')
    check_scale_agreement(opt, opt_file)  # network_g scale == top-level scale
    check_pretrain_paths(opt, opt_file)
    check_model_options(opt, opt_file)


def _wrap_parse_options(original: Callable) -> Callable:
    @functools.wraps(original)
    def parse_options(root_path: str, is_train: bool = True):
        opt_file = option_file_argument()
        try:
            check_environment()  # ESC_BASICSR_ATTN=bogus: refused here, not at the first forward
            if opt_file is not None:
                check_parsable(read_option_file(opt_file), opt_file, is_train)
        except (OptionFileError, ValueError) as exc:
            report(exc)
        opt, args = original(root_path, is_train=is_train)
        source = getattr(args, 'opt', '?')
        try:
            check_options(opt, source)
            check_structure(opt, source, is_train)
        except (ValueError, FileNotFoundError) as exc:  # DatasetPathError/PretrainPathError are OSErrors
            report(exc)
        patch_resume_modules()
        from .experiment_folders import patch_bound_copies

        patch_bound_copies()
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
