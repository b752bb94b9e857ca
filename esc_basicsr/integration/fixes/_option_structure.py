"""What BasicSR's option parser and pipelines need of an option file (part of :mod:`.option_checks`).

BasicSR 1.4.2 ends in a Python traceback for a malformed option file (invalid YAML, a missing ``name``,
``num_gpu`` or ``datasets``, an unknown network/model/dataset/loss type, a string where a number
belongs), often after the experiment folder was made. :func:`check_parsable` checks what its parser
reads, before it runs; :func:`check_structure` the types and registered names the pipelines use.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any, Mapping

from ...utils.options import OptionFileError, check_network_g, load_option_yaml, shown


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
        raise OptionFileError(f'{source}: missing {shown(key)}{where}')
    if not isinstance(value, Mapping):
        raise OptionFileError(f'{source}: {shown(key)}{where} must be a mapping (key: value lines), got {shown(value)}')
    return value


def check_parsable(opt: Any, source: str, is_train: bool = True) -> None:
    """What BasicSR's ``parse_options`` itself reads: a mapping with ``name`` (text), ``num_gpu`` (an int or
    ``auto``), ``manual_seed`` (an int, if set), ``datasets`` (a mapping of mappings) and ``path`` (a mapping).

    Raises:
        OptionFileError: naming ``source`` and the key.
    """
    if not isinstance(opt, Mapping):
        raise OptionFileError(f'{source}: not a BasicSR option file (a YAML mapping with name, model_type, num_gpu, '
                              f'datasets, network_g, path, ...), got {type(opt).__name__} {shown(opt, 60)}')
    if not isinstance(opt.get('name'), str) or not opt.get('name'):
        raise OptionFileError(f'{source}: missing \'name\' (the experiment name, a text)' if 'name' not in opt
                              else f'{source}: \'name\' must be a text, got {shown(opt["name"])}')
    if 'num_gpu' not in opt:
        raise OptionFileError(f'{source}: missing \'num_gpu\' (0 for the CPU, a count, or auto)')
    if not (opt['num_gpu'] == 'auto' or (_is_int(opt['num_gpu']) and opt['num_gpu'] >= 0)):
        raise OptionFileError(f'{source}: \'num_gpu\' must be an integer >= 0 or auto, got {shown(opt["num_gpu"])}')
    if opt.get('manual_seed') is not None and not _is_int(opt['manual_seed']):
        raise OptionFileError(f'{source}: \'manual_seed\' must be an integer, got {shown(opt["manual_seed"])}')
    datasets = _mapping(opt, 'datasets', '', source)
    for phase, dataset in datasets.items():
        if not isinstance(dataset, Mapping):
            raise OptionFileError(f'{source}: datasets.{phase} must be a mapping, got {shown(dataset)}')
    _mapping(opt, 'path', '', source)


def _registered(registry, name: Any, what: str, source: str) -> None:
    """Refuse a name ``registry.get`` would not find (it also tries BasicSR's ``<name>_basicsr`` suffix)."""
    if not isinstance(name, str) or (name not in registry and f'{name}_basicsr' not in registry):
        close = difflib.get_close_matches(str(name), list(registry._obj_map), n=2)
        hint = f'; did you mean {" or ".join(map(repr, close))}?' if close else ''
        raise OptionFileError(f'{source}: {what} {shown(name)} is not registered in BasicSR{hint}')


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
    if 'network_g' not in opt:  # every BasicSR model builds network_g first (a KeyError there)
        raise OptionFileError(f'{source}: missing \'network_g\' (the network: its type and arguments, '
                              'e.g. network_g: {type: ESC, ...})')
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
            raise OptionFileError(f'{source}: {where}: a training option file has phases train and val*, '
                                  f'not {shown(phase)}')
        _registered(DATASET_REGISTRY, dataset.get('type'), f'{where}.type', source)
        if 'io_backend' in dataset and not isinstance(dataset['io_backend'], Mapping):
            raise OptionFileError(f'{source}: {where}.io_backend must be a mapping such as {{type: disk}}')
        if is_train and phase == 'train':
            for key, minimum in (('batch_size_per_gpu', 1), ('num_worker_per_gpu', 0)):
                if not _is_int(dataset.get(key)) or dataset[key] < minimum:
                    raise OptionFileError(f'{source}: {where}.{key} must be an integer >= {minimum}, '
                                          f'got {shown(dataset.get(key))}')
    if not is_train:
        _check_val(opt, source)  # basicsr/test.py reads val.save_img of every test file
        return
    train = _mapping(opt, 'train', '', source)
    if not _is_number(train.get('total_iter'), 1):
        raise OptionFileError(f'{source}: train.total_iter must be a number >= 1, got {shown(train.get("total_iter"))}')
    for key, value in train.items():
        if str(key).startswith(('optim_', 'scheduler')) and not (isinstance(value, Mapping) and 'type' in value):
            raise OptionFileError(f'{source}: train.{key} must be a mapping with a type, got {shown(value)}')
        if str(key).endswith('_opt') and isinstance(value, Mapping) and 'type' in value:
            _registered(LOSS_REGISTRY, value['type'], f'train.{key}.type', source)
    _check_optimizers(opt, train, source)
    logger = _mapping(opt, 'logger', '', source)
    for key in ('print_freq', 'save_checkpoint_freq'):
        if not _is_number(logger.get(key), 1):
            raise OptionFileError(f'{source}: logger.{key} must be a number >= 1, got {shown(logger.get(key))}')
    if opt.get('val') is not None:
        val = _check_val(opt, source)
        if not _is_number(val.get('val_freq'), 1):
            raise OptionFileError(f'{source}: val.val_freq must be a number >= 1, got {shown(val.get("val_freq"))}')


def _check_val(opt: Mapping, source: str) -> Mapping:
    """The ``val`` section BasicSR's pipelines and ``SRModel.nondist_validation`` read: ``save_img`` (true or
    false) always, ``suffix`` when testing with ``save_img: true``.

    BasicSR 1.4.2 names a test image ``<image>_<suffix>.png``, or ``<image>_<name>.png`` when ``suffix`` is
    empty (``~``, as its own test files say: "if None, use exp name"), but a *missing* ``suffix`` is a
    ``KeyError: 'suffix'`` after the whole set has run. A missing ``suffix`` is given that documented
    meaning here (``suffix: ~``, set in ``opt``) instead. Returns the ``val`` mapping.

    Raises:
        OptionFileError: naming ``source`` and the key.
    """
    val = _mapping(opt, 'val', ' (the validation/test settings: save_img, metrics, ...)', source)
    if not isinstance(val.get('save_img'), bool):
        raise OptionFileError(f'{source}: val.save_img must be true or false (write the output images or not), '
                              f'got {shown(val.get("save_img"))}' if 'save_img' in val else
                              f'{source}: missing val.save_img (true to write the output images, false for '
                              'metrics only)')
    if not opt.get('is_train', True) and 'suffix' not in val:
        val['suffix'] = None  # BasicSR's own default spelled out: images named <image>_<name>.png
    return val


def _check_optimizers(opt: Mapping, train: Mapping, source: str) -> None:
    """Build every ``train.optim_*`` (on one dummy parameter) and the ``train.scheduler`` as the model class
    of ``model_type`` will, so that a wrong type, a string ``lr`` or an unknown argument is refused before
    any work, not as a ``TypeError`` traceback from ``torch.optim`` once the network is built.

    Raises:
        OptionFileError: naming ``source``, the key and the reason.
    """
    import copy
    import types

    import torch
    from basicsr.utils.registry import MODEL_REGISTRY

    model_cls = MODEL_REGISTRY.get(opt['model_type'])
    optimizers = []
    for key, value in train.items():
        if not str(key).startswith('optim_'):
            continue
        args = dict(value)
        optim_type = args.pop('type')
        if not _is_number(args.get('lr'), 0) or not args['lr'] > 0:
            raise OptionFileError(f'{source}: train.{key}.lr must be a number > 0, got {shown(args.get("lr"))}'
                                  if 'lr' in args else f'{source}: missing train.{key}.lr (the learning rate)')
        try:  # get_optimizer uses no state of the model (BasicSR's, its AdamW fix's and ESRModel's)
            optimizers.append(model_cls.get_optimizer(None, optim_type, [torch.zeros(1, requires_grad=True)],
                                                      **args))
        except Exception as exc:  # noqa: BLE001 - any refusal of torch.optim or of the model is the file's fault
            raise OptionFileError(f'{source}: train.{key} cannot build optimizer {optim_type!r} '
                                  f'({type(exc).__name__}: {str(exc)[:300]})') from None
    scheduler = train.get('scheduler')
    if optimizers and isinstance(scheduler, Mapping):
        # setup_schedulers reads only opt['train']['scheduler'] and the optimizers (it pops 'type': a copy)
        model = types.SimpleNamespace(opt={'train': {'scheduler': copy.deepcopy(dict(scheduler))}},
                                      optimizers=optimizers, schedulers=[])
        try:
            model_cls.setup_schedulers(model)
        except Exception as exc:  # noqa: BLE001
            raise OptionFileError(f'{source}: train.scheduler cannot build scheduler {scheduler.get("type")!r} '
                                  f'({type(exc).__name__}: {str(exc)[:300]})') from None
