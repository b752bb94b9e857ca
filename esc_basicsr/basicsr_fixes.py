"""Small, targeted fixes to BasicSR's training entry points (installed when esc_basicsr is imported).

Each fix replaces exactly one broken behaviour of ``basicsr`` 1.4.2 (the same code is in its
development version) and leaves everything else to BasicSR. ``install()`` is idempotent and does
nothing for a BasicSR whose structure differs (functions missing): the fixes are guarded with
``hasattr``/``callable`` checks. See ``docs/training.md`` ("Resume and faults") for the user view.

1. **Resume** (``basicsr.train.load_resume_state``), three bugs that make
   ``python -m basicsr.train -opt X.yml --auto_resume`` silently restart or crash:

   a. ``--auto_resume`` looks for ``experiments/<name>/training_states`` relative to the current
      directory, while training writes to ``opt['path']['training_states']`` (under BasicSR's
      ``root_path``, which is ``site-packages/`` for a pip-installed BasicSR). Fixed: look where
      training writes.
   b. the state is mapped onto ``torch.cuda.current_device()``, which fails without CUDA. Fixed:
      the current CUDA device if CUDA is available and ``num_gpu != 0``, else the CPU.
   c. ``torch.load`` defaults to ``weights_only=True`` (torch >= 2.6) and rejects the
      ``collections.Counter`` of BasicSR's ``MultiStepRestartLR`` state. Fixed: load with
      ``weights_only=True`` and exactly that class allow-listed (no code from the file runs).

   Also, if the newest ``.state`` file cannot be read (e.g. the process was killed while writing
   it; BasicSR does not write atomically), the next older state is used, with a warning.

   ``python -m basicsr.train`` runs ``basicsr/train.py`` as ``__main__``, a second module object
   that is executed after this module was installed: its ``parse_options`` is our wrapper (bound
   from ``basicsr.utils.options`` at exec time), which then replaces ``load_resume_state`` in
   ``__main__`` (looked up at call time by ``train_pipeline``).

2. **Early, clear errors for missing files**: the ``parse_options`` wrapper checks that every
   ``dataroot_gt``/``dataroot_lq``/``meta_info_file`` of a ``disk``/``lmdb`` dataset exists (LMDBs
   also need ``data.mdb`` and ``meta_info.txt``) and raises ``DatasetPathError`` naming the option
   file, the dataset and the path, before BasicSR creates (or archives) any experiment folder;
   likewise ``PretrainPathError`` for a missing ``pretrain_network_*`` (unless training resumes).

3. **Corrupt LMDB entries**: ``LmdbBackend.get`` raises ``KeyError`` for a key that is missing from
   the LMDB and ``CorruptImageError`` for a truncated PNG/JPEG value (checked by its end marker,
   without decoding), naming the LMDB and the key, instead of an ``AttributeError`` on ``None``
   deep in the dataset. Values in other formats are passed through unchanged.

4. **AdamW** in BasicSR 1.4.2's ``BaseModel.get_optimizer`` (only ``Adam`` is supported there; the
   development version supports ``AdamW`` itself, in which case this fix is never reached): the
   ESC recipe's ``optim_g: {type: AdamW}`` builds ``torch.optim.AdamW``.
"""
from __future__ import annotations

import collections
import functools
import os
import sys
from os import path as osp
from typing import Any, Callable

import torch

_MARK = '_esc_basicsr_fix'
# classes (besides tensors and builtins) that BasicSR training states contain
SAFE_STATE_GLOBALS: list = [collections.Counter]


class DatasetPathError(FileNotFoundError):
    """A dataset path of an option file does not exist."""


class PretrainPathError(FileNotFoundError):
    """A ``pretrain_network_*`` path of an option file does not exist (and training does not resume)."""


class CorruptImageError(ValueError):
    """An LMDB value is not a complete, decodable image."""


def _marked(func: Callable, original: Callable) -> Callable:
    setattr(func, _MARK, True)
    func.__wrapped__ = original  # type: ignore[attr-defined]
    return func


def _is_ours(func: Any) -> bool:
    return getattr(func, _MARK, False)


# --------------------------------------------------------------------------------------- resume
def resume_map_location(opt: dict) -> torch.device:
    """Device for the resume state: the current CUDA device, or the CPU without CUDA/num_gpu 0."""
    if torch.cuda.is_available() and opt.get('num_gpu', 1) != 0:
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def load_training_state(path: str, map_location: Any = 'cpu') -> dict:
    """Load a BasicSR ``.state`` file with ``weights_only=True`` and only the needed classes allowed."""
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:  # torch < 2.5
        raise RuntimeError(f'Resuming from {path} needs torch >= 2.5 (torch.serialization.safe_globals) '
                           'to load the training state safely.')
    with safe_globals(SAFE_STATE_GLOBALS):
        return torch.load(path, map_location=map_location, weights_only=True)


def _state_iters(state_dir: str) -> list[int]:
    """Iterations of the ``<iter>.state`` files in ``state_dir``, newest first."""
    iters = []
    for entry in os.scandir(state_dir):
        stem, ext = osp.splitext(entry.name)
        if ext == '.state' and entry.is_file() and stem.isdigit():
            iters.append(int(stem))
    return sorted(iters, reverse=True)


def load_resume_state(opt: dict) -> dict | None:
    """Fixed ``basicsr.train.load_resume_state`` (same contract; see the module docstring)."""
    from basicsr.utils import check_resume

    location = resume_map_location(opt)
    if opt['auto_resume']:
        state_dir = opt['path'].get('training_states') or osp.join('experiments', opt['name'], 'training_states')
        candidates = [osp.join(state_dir, f'{i}.state') for i in _state_iters(state_dir)] \
            if osp.isdir(state_dir) else []
    else:
        candidates = [opt['path']['resume_state']] if opt['path'].get('resume_state') else []

    resume_state = None
    for i, path in enumerate(candidates):
        try:
            resume_state = load_training_state(path, location)
        except Exception as exc:  # noqa: BLE001 - a truncated/foreign file: report and fall back
            if not opt['auto_resume'] or i == len(candidates) - 1:
                raise RuntimeError(f'cannot load the training state {path}: {exc}') from exc
            print(f'esc_basicsr: cannot load the training state {path} ({type(exc).__name__}: {exc}); '
                  'trying the previous one.', flush=True)
            continue
        opt['path']['resume_state'] = path
        break
    if resume_state is None:
        return None
    check_resume(opt, resume_state['iter'])
    return resume_state


# ----------------------------------------------------------------------------- dataset checks
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
        return osp.isdir(state_dir) and bool(_state_iters(state_dir))
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


def _wrap_parse_options(original: Callable) -> Callable:
    @functools.wraps(original)
    def parse_options(root_path: str, is_train: bool = True):
        opt, args = original(root_path, is_train=is_train)
        check_dataset_paths(opt, getattr(args, 'opt', '?'))
        check_pretrain_paths(opt, getattr(args, 'opt', '?'))
        _patch_resume_modules()
        return opt, args

    return _marked(parse_options, original)


def _patch_resume_modules() -> None:
    """Replace ``load_resume_state`` in ``basicsr.train`` and in a ``python -m basicsr.train`` main."""
    targets = [sys.modules.get('basicsr.train')]
    main = sys.modules.get('__main__')
    if getattr(getattr(main, '__spec__', None), 'name', None) == 'basicsr.train':
        targets.append(main)
    for module in targets:
        current = getattr(module, 'load_resume_state', None)
        if callable(current) and not _is_ours(current):
            setattr(module, 'load_resume_state', _marked(_fixed_load_resume_state(), current))


def _fixed_load_resume_state() -> Callable:
    def fixed(opt):
        return load_resume_state(opt)

    fixed.__doc__ = load_resume_state.__doc__
    return fixed


# -------------------------------------------------------------------------------- LMDB values
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_END = b'IEND\xaeB`\x82'


def image_bytes_problem(buf: bytes) -> str | None:
    """Why ``buf`` is not a complete PNG/JPEG (``None`` if it looks complete, or is another format).

    Checked by the start and end markers only (cheap, no decoding); values in other formats (a custom
    dataset may store anything) are passed through unchecked.
    """
    if buf[:8] == _PNG_SIGNATURE:
        return None if buf[-8:] == _PNG_END else 'truncated PNG (no IEND chunk)'
    if buf[:2] == b'\xff\xd8':
        return None if b'\xff\xd9' in buf[-64:] else 'truncated JPEG (no end-of-image marker)'
    if buf[:4] == _PNG_SIGNATURE[:4]:
        return 'damaged PNG signature'
    return None


def _wrap_lmdb_get(original: Callable) -> Callable:
    @functools.wraps(original)
    def get(self, filepath, client_key):
        value = original(self, filepath, client_key)
        problem = 'missing' if value is None else image_bytes_problem(bytes(value))
        if problem is not None:
            db = dict(zip(self._client, self.db_paths)).get(client_key, client_key)
            if value is None:
                raise KeyError(f'LMDB {db}: no entry for key {str(filepath)!r} (listed in its meta_info.txt?)')
            raise CorruptImageError(f'LMDB {db}: the entry for key {str(filepath)!r} is corrupt ({problem}); '
                                    'rebuild the LMDB with "python -m esc_basicsr.prepare".')
        return value

    return _marked(get, original)


# ----------------------------------------------------------------------------------- AdamW
def _wrap_get_optimizer(original: Callable) -> Callable:
    @functools.wraps(original)
    def get_optimizer(self, optim_type, params, lr, **kwargs):
        try:
            return original(self, optim_type, params, lr, **kwargs)
        except NotImplementedError:
            if optim_type != 'AdamW':
                raise
            return torch.optim.AdamW(params, lr, **kwargs)

    return _marked(get_optimizer, original)


# ---------------------------------------------------------------------------------- install
def _replace(owner: Any, name: str, wrapper_factory: Callable[[Callable], Callable]) -> bool:
    current = getattr(owner, name, None)
    if not callable(current) or _is_ours(current):
        return False
    setattr(owner, name, wrapper_factory(current))
    return True


def install() -> None:
    """Install the fixes (idempotent; silent; skips any part whose BasicSR structure differs)."""
    try:
        import basicsr.utils.options as options
        from basicsr.models.base_model import BaseModel
        from basicsr.utils.file_client import LmdbBackend
    except ImportError:  # pragma: no cover - a BasicSR without these modules: leave it alone
        return
    _replace(options, 'parse_options', _wrap_parse_options)
    wrapper = options.parse_options
    if _is_ours(wrapper):
        # the already-imported pipeline modules bound the original at import time
        for name in ('basicsr.train', 'basicsr.test'):
            module = sys.modules.get(name)
            if module is not None and getattr(module, 'parse_options', None) is wrapper.__wrapped__:
                module.parse_options = wrapper
    _patch_resume_modules()
    _replace(LmdbBackend, 'get', _wrap_lmdb_get)
    _replace(BaseModel, 'get_optimizer', _wrap_get_optimizer)
