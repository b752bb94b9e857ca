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
* checks every ``pretrain_network_*`` (unless training resumes), the scale agreement of ``network_g``,
  options of the authors' ``ESRModel`` set for another model, and the types and registered names the
  pipelines will use (:func:`check_structure`).

As a command (``python -m basicsr.train``, ``esc-train``..., :mod:`._command`) each failure is ``error:
...`` and exit code 2; called in-process it raises. The wrapper also hands ``load_resume_state`` (and
``mkdir_and_rename``) of a ``python -m basicsr.train`` main to their fixes.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import os
import sys
from os import path as osp
from typing import Any, Callable, Mapping

from ...utils.options import OptionFileError, check_network_g, check_scale_agreement, load_option_yaml
from ._command import report
from ._patching import is_ours, marked, replace
from .resume import patch_resume_modules, state_iters

# ``ESC_BASICSR_SKIP_MISSING_SETS=1``: validation/test sets whose folders are missing are left out
SKIP_MISSING_ENV = 'ESC_BASICSR_SKIP_MISSING_SETS'
# BasicSR's Real-ESRGAN models put their degradation tools on CUDA in __init__; ours run anywhere
CUDA_ONLY_MODELS = {'RealESRNetModel': 'RealHATMSEModel', 'RealESRGANModel': 'RealHATGANModel'}
# dataset types that pair GT and LR files by name in two folders (BasicSR's paired_paths_from_folder)
PAIRED_FOLDER_TYPES = ('PairedImageDataset', 'ArbitraryScalePairedDataset')


class DatasetPathError(FileNotFoundError):
    """Dataset paths of an option file that BasicSR could not read (all of them, one per line)."""


class PretrainPathError(FileNotFoundError):
    """A ``pretrain_network_*`` path of an option file does not exist (and training does not resume)."""


def _lq_names_problem(dataset: dict) -> str | None:
    """Why BasicSR would not find the LR file of every GT file of a paired folder dataset (``None``:
    it would), with the ``filename_tmpl`` that fits when the LR names are the GT names plus a suffix."""
    gt_dir, lq_dir = dataset.get('dataroot_gt'), dataset.get('dataroot_lq')
    if (dataset.get('type') not in PAIRED_FOLDER_TYPES or dataset.get('meta_info_file')
            or not isinstance(gt_dir, str) or not isinstance(lq_dir, str)
            or not osp.isdir(gt_dir) or not osp.isdir(lq_dir)):
        return None
    gt_files, lq_files = (sorted(e.name for e in os.scandir(d) if e.is_file() and not e.name.startswith('.'))
                          for d in (gt_dir, lq_dir))  # what BasicSR's scandir lists
    lq_names = set(lq_files)
    tmpl = dataset.get('filename_tmpl', '{}')
    try:
        missing = [n for n in gt_files if tmpl.format(osp.splitext(n)[0]) + osp.splitext(n)[1] not in lq_names]
    except (IndexError, KeyError, ValueError, AttributeError):  # not a one-field template: BasicSR will say so
        return None
    if not missing:
        if len(lq_files) != len(gt_files):  # BasicSR asserts equal counts
            return f'{lq_dir!r} holds {len(lq_files)} files, {gt_dir!r} {len(gt_files)}: keep only the pairs'
        return None
    stem, ext = osp.splitext(missing[0])
    expected = tmpl.format(stem) + ext
    found = sorted(n for n in lq_files if n.startswith(stem) and n.endswith(ext) and n != expected)
    hint = ''
    if found:
        suffix = found[0][len(stem):len(found[0]) - len(ext)]
        hint = f' ({lq_dir!r} has {found[0]!r}: set filename_tmpl: \'{{}}{suffix}\' for this dataset)'
    return (f'{len(missing)} of {len(gt_files)} GT files have no LR file named as filename_tmpl '
            f'{tmpl!r} says, e.g. {missing[0]!r} -> {expected!r}{hint}')


def dataset_problems(opt: dict) -> dict[str, list[str]]:
    """Phase (``train``, ``val``, ``test_1`` ...) -> what is wrong with the paths of that dataset
    (missing paths, incomplete LMDBs, LR files not named as ``filename_tmpl`` says); only
    datasets with problems are listed. ``disk``/``lmdb`` datasets only."""
    problems: dict[str, list[str]] = {}
    for phase, dataset in (opt.get('datasets') or {}).items():
        backend = (dataset.get('io_backend') or {}).get('type', 'disk')
        if backend not in ('disk', 'lmdb'):
            continue
        found = []
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file', 'meta_info'):
            path = dataset.get(key)
            if not isinstance(path, str) or not path:
                continue
            where = f'datasets.{phase}.{key} ({dataset.get("name", phase)})'
            if not osp.exists(path):
                found.append(f'{where}: {path!r} does not exist')
            elif backend == 'lmdb' and key.startswith('dataroot'):
                for needed in ('data.mdb', 'meta_info.txt'):
                    if not osp.isfile(osp.join(path, needed)):
                        found.append(f'{where}: {path!r} is not a complete LMDB ({needed} is missing); rebuild it '
                                     'with "python -m esc_basicsr.prepare"')
        names = _lq_names_problem(dataset) if not found and backend == 'disk' else None
        if names:
            found.append(f'datasets.{phase} ({dataset.get("name", phase)}): {names}')
        if found:
            problems[phase] = found
    return problems


def _skippable(phase: str) -> bool:
    return phase.split('_')[0] in ('val', 'test')


def check_dataset_paths(opt: dict, opt_file: str = '?') -> list[str]:
    """Raise ``DatasetPathError`` listing every dataset path problem of ``opt`` (:func:`dataset_problems`).

    With ``ESC_BASICSR_SKIP_MISSING_SETS=1`` validation/test datasets with problems are removed from
    ``opt`` instead (as long as something is left to test) and their names returned.
    """
    problems = dataset_problems(opt)
    if not problems:
        return []
    datasets = opt['datasets']
    name = {phase: datasets[phase].get('name', phase) for phase in datasets}
    present = [name[p] for p in datasets if p not in problems and _skippable(p)]
    skippable = all(_skippable(p) for p in problems) and (present or opt.get('is_train'))
    if skippable and os.environ.get(SKIP_MISSING_ENV, '').strip().lower() not in ('', '0', 'false', 'no', 'off'):
        for phase in problems:
            del datasets[phase]
        return [name[p] for p in problems]
    lines = [f'{opt_file}: {len(problems)} of {len(datasets)} datasets cannot be read, '
             f'{", ".join(name[p] for p in problems)} (relative paths are resolved from {os.getcwd()}; the layout, '
             'how to prepare it and where the sets come from: docs/data.md):']
    lines += [f'  {line}' for phase in problems for line in problems[phase]]
    if skippable:
        what = f'only {", ".join(present)}' if present else 'without validation'
        lines.append(f'To run {what}: set {SKIP_MISSING_ENV}=1 (e.g. "{SKIP_MISSING_ENV}=1 python -m esc_basicsr.'
                     f'{"train" if opt.get("is_train") else "test"} -opt {opt_file}"), or delete the other entries '
                     'under datasets: in a copy of the option file.')
    raise DatasetPathError('\n'.join(lines))


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


def option_file_argument(argv: list[str] | None = None) -> str | None:
    """The ``-opt`` argument of ``argv`` (default ``sys.argv``), without parsing anything else."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str, default=None)
    args, _ = parser.parse_known_args((sys.argv if argv is None else argv)[1:])
    return args.opt


def read_option_file(path: str) -> Any:
    """The option file as BasicSR reads it (its YAML loader); :class:`OptionFileError` if it cannot be read."""
    from basicsr.utils.options import ordered_yaml

    return load_option_yaml(path, '-opt', ordered_yaml()[0])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any, minimum: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum


def _mapping(opt: Mapping, key: str, where: str, source: str) -> Mapping:
    value = opt.get(key)
    if key not in opt:
        raise OptionFileError(f'{source}: missing {key!r}{where}')
    if not isinstance(value, Mapping):
        raise OptionFileError(f'{source}: {key!r}{where} must be a mapping (key: value lines), got {value!r}')
    return value


def check_parsable(opt: Any, source: str, is_train: bool = True) -> None:
    """What BasicSR's ``parse_options`` itself reads: a mapping with ``name`` (text), ``num_gpu`` (an int or
    ``auto``), ``manual_seed`` (an int, if set), ``datasets`` (a mapping of mappings) and ``path`` (a mapping).

    Raises:
        OptionFileError: naming ``source`` and the key.
    """
    if not isinstance(opt, Mapping):
        raise OptionFileError(f'{source}: not a BasicSR option file (a YAML mapping with name, model_type, num_gpu, '
                              f'datasets, network_g, path, ...), got {type(opt).__name__} {str(opt)[:60]!r}')
    if not isinstance(opt.get('name'), str) or not opt.get('name'):
        raise OptionFileError(f'{source}: missing \'name\' (the experiment name, a text)' if 'name' not in opt
                              else f'{source}: \'name\' must be a text, got {opt["name"]!r}')
    if 'num_gpu' not in opt:
        raise OptionFileError(f'{source}: missing \'num_gpu\' (0 for the CPU, a count, or auto)')
    if not (opt['num_gpu'] == 'auto' or (_is_int(opt['num_gpu']) and opt['num_gpu'] >= 0)):
        raise OptionFileError(f'{source}: \'num_gpu\' must be an integer >= 0 or auto, got {opt["num_gpu"]!r}')
    if opt.get('manual_seed') is not None and not _is_int(opt['manual_seed']):
        raise OptionFileError(f'{source}: \'manual_seed\' must be an integer, got {opt["manual_seed"]!r}')
    datasets = _mapping(opt, 'datasets', '', source)
    for phase, dataset in datasets.items():
        if not isinstance(dataset, Mapping):
            raise OptionFileError(f'{source}: datasets.{phase} must be a mapping, got {dataset!r}')
    _mapping(opt, 'path', '', source)


def _registered(registry, name: Any, what: str, source: str) -> None:
    """Refuse a name ``registry.get`` would not find (it also tries BasicSR's ``<name>_basicsr`` suffix)."""
    if not isinstance(name, str) or (name not in registry and f'{name}_basicsr' not in registry):
        close = difflib.get_close_matches(str(name), list(registry._obj_map), n=2)
        hint = f'; did you mean {" or ".join(map(repr, close))}?' if close else ''
        raise OptionFileError(f'{source}: {what} {name!r} is not registered in BasicSR{hint}')


def check_structure(opt: Mapping, source: str, is_train: bool = True) -> None:
    """The types and registered names the train/test pipelines use: ``model_type``, every ``network_*``
    (its arguments too), each dataset's ``type`` (and batch size and workers for training), and for
    training the ``train`` (``total_iter``, optimizer/scheduler/loss types) and ``logger`` sections.

    Raises:
        OptionFileError: naming ``source`` and the key.
    """
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

    if 'model_type' not in opt:
        raise OptionFileError(f'{source}: missing \'model_type\' (e.g. SRModel)')
    _registered(MODEL_REGISTRY, opt['model_type'], 'model_type', source)
    for key in [k for k in opt if str(k).startswith('network_')]:
        try:
            check_network_g(opt[key], ARCH_REGISTRY._obj_map, f'{source}: {key}')
        except ValueError as exc:
            raise OptionFileError(str(exc)) from None
    phases = opt['datasets']
    if is_train and 'train' not in phases:
        raise OptionFileError(f'{source}: datasets has no \'train\' entry (phases: {list(phases)})')
    for phase, dataset in phases.items():
        where = f'datasets.{phase}'
        if is_train and phase != 'train' and not str(phase).startswith('val'):
            raise OptionFileError(f'{source}: {where}: a training option file has phases train and val*, not {phase!r}')
        _registered(DATASET_REGISTRY, dataset.get('type'), f'{where}.type', source)
        if 'io_backend' in dataset and not isinstance(dataset['io_backend'], Mapping):
            raise OptionFileError(f'{source}: {where}.io_backend must be a mapping such as {{type: disk}}')
        if is_train and phase == 'train':
            for key, minimum in (('batch_size_per_gpu', 1), ('num_worker_per_gpu', 0)):
                if not _is_int(dataset.get(key)) or dataset[key] < minimum:
                    raise OptionFileError(f'{source}: {where}.{key} must be an integer >= {minimum}, '
                                          f'got {dataset.get(key)!r}')
    if not is_train:
        return
    train = _mapping(opt, 'train', '', source)
    if not _is_number(train.get('total_iter'), 1):
        raise OptionFileError(f'{source}: train.total_iter must be a number >= 1, got {train.get("total_iter")!r}')
    for key, value in train.items():
        if str(key).startswith(('optim_', 'scheduler')) and not (isinstance(value, Mapping) and 'type' in value):
            raise OptionFileError(f'{source}: train.{key} must be a mapping with a type, got {value!r}')
        if str(key).endswith('_opt') and isinstance(value, Mapping) and 'type' in value:
            _registered(LOSS_REGISTRY, value['type'], f'train.{key}.type', source)
    logger = _mapping(opt, 'logger', '', source)
    for key in ('print_freq', 'save_checkpoint_freq'):
        if not _is_number(logger.get(key), 1):
            raise OptionFileError(f'{source}: logger.{key} must be a number >= 1, got {logger.get(key)!r}')
    if opt.get('val') is not None:
        val = _mapping(opt, 'val', '', source)
        if not _is_number(val.get('val_freq'), 1):
            raise OptionFileError(f'{source}: val.val_freq must be a number >= 1, got {val.get("val_freq")!r}')


def adapt_to_cpu(opt: dict, opt_file: str = '?', cuda: bool | None = None) -> list[str]:
    """On a machine without CUDA, turn the CUDA-only settings of a GPU option file into their CPU
    equivalents, in place; returns what changed (``['datasets.train.prefetch_mode cuda -> ~', ...]``).

    * ``num_gpu`` > 0 -> 0 (``auto`` already is 0 there: BasicSR counts the GPUs);
    * ``prefetch_mode: cuda`` (BasicSR's ``CUDAPrefetcher`` copies batches to the GPU on a CUDA
      stream) -> ``~`` (the plain loader, BasicSR's ``CPUPrefetcher``);
    * ``pin_memory: true`` (page-locked memory for copies to a GPU) -> false.

    Args:
        cuda: whether CUDA is available (default: ask torch).

    Raises:
        ValueError: ``model_type`` RealESRNetModel/RealESRGANModel, which need CUDA (BasicSR puts
            their degradation tools on the GPU); the authors' RealHATMSEModel/RealHATGANModel are
            the same models with those tools on the model's device.
    """
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if cuda:
        return []
    model_type = opt.get('model_type')
    if model_type in CUDA_ONLY_MODELS:
        raise ValueError(f'{opt_file}: model_type {model_type} needs CUDA (BasicSR 1.4.2 puts its degradation '
                         f'tools on the GPU) and this machine has none; model_type: {CUDA_ONLY_MODELS[model_type]} '
                         'trains the same way with them on the CPU (docs/training.md)')
    changes = []
    if isinstance(opt.get('num_gpu'), int) and opt['num_gpu'] > 0:
        changes.append(f'num_gpu {opt["num_gpu"]} -> 0')
        opt['num_gpu'] = 0
    for phase, dataset in (opt.get('datasets') or {}).items():
        if dataset.get('prefetch_mode') == 'cuda':
            dataset['prefetch_mode'] = None
            changes.append(f'datasets.{phase}.prefetch_mode cuda -> ~')
        if dataset.get('pin_memory'):
            dataset['pin_memory'] = False
            changes.append(f'datasets.{phase}.pin_memory true -> false')
    return changes


def check_prefetch_mode(opt: dict, opt_file: str = '?') -> None:
    """Raise ``ValueError`` for a ``prefetch_mode`` BasicSR's training loop would refuse only after
    creating the experiment folder (an unknown mode; ``cuda`` without ``pin_memory: true``)."""
    train = (opt.get('datasets') or {}).get('train') or {}
    mode = train.get('prefetch_mode')
    if mode not in (None, 'cpu', 'cuda'):
        raise ValueError(f'{opt_file}: datasets.train.prefetch_mode {mode!r}: BasicSR knows ~, cpu and cuda')
    if mode == 'cuda' and train.get('pin_memory') is not True:
        raise ValueError(f'{opt_file}: datasets.train.prefetch_mode cuda needs pin_memory: true (BasicSR\'s '
                         'CUDAPrefetcher)')


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
        kept = [d.get('name', p) for p, d in opt['datasets'].items() if _skippable(p)]
        _say(opt, f'{SKIP_MISSING_ENV}: left out {", ".join(skipped)} (missing or unreadable, see docs/data.md); '
                  f'running {", ".join(kept) or "no validation"}')
    check_scale_agreement(opt, opt_file)  # network_g scale == top-level scale
    check_pretrain_paths(opt, opt_file)
    check_model_options(opt, opt_file)


def _wrap_parse_options(original: Callable) -> Callable:
    @functools.wraps(original)
    def parse_options(root_path: str, is_train: bool = True):
        opt_file = option_file_argument()
        if opt_file is not None:
            try:
                check_parsable(read_option_file(opt_file), opt_file, is_train)
            except OptionFileError as exc:
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
