"""Fix of ``basicsr.train.load_resume_state`` (BasicSR 1.4.2; same code in its development version).

Three bugs make ``python -m basicsr.train -opt X.yml --auto_resume`` silently restart or crash:

a. ``--auto_resume`` looks for ``experiments/<name>/training_states`` relative to the current
   directory, while training writes to ``opt['path']['training_states']`` (under BasicSR's
   ``root_path``, which is ``site-packages/`` for a pip-installed BasicSR). Fixed: look where
   training writes.
b. the state is mapped onto ``torch.cuda.current_device()``, which fails without CUDA. Fixed:
   the current CUDA device if CUDA is available and ``num_gpu != 0``, else the CPU.
c. ``torch.load`` defaults to ``weights_only=True`` (torch >= 2.6) and rejects the
   ``collections.Counter`` of BasicSR's ``MultiStepRestartLR`` state. Fixed: load with
   ``weights_only=True`` and exactly that class allow-listed (no code from the file runs).

Also, ``--auto_resume`` uses the newest *complete pair*: a ``.state`` file that cannot be read, is not a
training state, or whose models (``net_*_<iter>.pth``, which ``check_resume`` will load) are missing or
truncated (BasicSR 1.4.2 writes neither atomically: a process killed while re-saving a model leaves it
half-written beside a complete ``.state``) is passed over for the next older one, with a message. An
explicit ``path.resume_state`` that is unusable is an error naming it (as a command: one line, exit code
2). A resumed training holds its experiment folder's lock (:mod:`.experiment_folders`).

``python -m basicsr.train`` runs ``basicsr/train.py`` as ``__main__``, a second module object:
:func:`patch_resume_modules` replaces ``load_resume_state`` there too (it is called by the
``parse_options`` wrapper of :mod:`.option_checks`, i.e. after ``__main__`` has executed).
"""
from __future__ import annotations

import collections
import os
import sys
from os import path as osp
from typing import Any, Callable

import torch

from ...archs.checkpoint_file import check_checkpoint_file
from ._command import report
from ._patching import is_ours, marked

# classes (besides tensors and builtins) that BasicSR training states contain; other fixes add theirs
SAFE_STATE_GLOBALS: list = [collections.Counter]

class ResumeStateError(RuntimeError):
    """A training state (or the models of its iteration) that cannot be resumed from."""


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
    check_checkpoint_file(path)  # cut short or damaged (CRC-32): refused, not loaded as wrong values
    with safe_globals(SAFE_STATE_GLOBALS):
        return torch.load(path, map_location=map_location, weights_only=True)


def state_iters(state_dir: str) -> list[int]:
    """Iterations of the ``<iter>.state`` files in ``state_dir``, newest first."""
    iters = []
    for entry in os.scandir(state_dir):
        stem, ext = osp.splitext(entry.name)
        if ext == '.state' and entry.is_file() and stem.isdigit():
            iters.append(int(stem))
    return sorted(iters, reverse=True)


def model_paths(opt: dict, resume_iter: int) -> list[str]:
    """The ``net_*_<iter>.pth`` files that ``check_resume`` makes the model load when resuming ``resume_iter``."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [osp.join(opt['path']['models'], f'net_{key[len("network_"):]}_{resume_iter}.pth')
            for key in opt if key.startswith('network_') and key not in ignored]


def checked_state(path: str, opt: dict, location: Any) -> dict:
    """The training state at ``path`` if it and the models of its iteration can be loaded.

    Raises:
        ResumeStateError: naming the file and why (unreadable, not a training state, a model missing or truncated).
    """
    first = ' '.join(str(path).split())
    try:
        state = load_training_state(path, location)
    except Exception as exc:  # noqa: BLE001 - truncated, foreign, not a torch file
        raise ResumeStateError(f'cannot load the training state {first} ({type(exc).__name__}: '
                               f'{str(exc).splitlines()[0][:200] if str(exc) else ""})') from None
    if not (isinstance(state, dict) and isinstance(state.get('iter'), int) and isinstance(state.get('epoch'), int)
            and isinstance(state.get('optimizers'), list) and isinstance(state.get('schedulers'), list)):
        found = sorted(map(str, state))[:6] if isinstance(state, dict) else type(state).__name__
        raise ResumeStateError(f'{first} is not a BasicSR training state (int "iter" and "epoch", lists '
                               f'"optimizers" and "schedulers"; found {found})')
    if opt['path'].get('models'):
        for model in model_paths(opt, state['iter']):
            try:
                check_checkpoint_file(model)  # a damaged model would resume from wrong weights without a word
                torch.load(model, map_location='cpu', weights_only=True, mmap=True)
            except Exception as exc:  # noqa: BLE001 - missing, truncated (killed while saving), 0 bytes
                raise ResumeStateError(f'{first}: its model {model} cannot be loaded ({type(exc).__name__}: '
                                       f'{str(exc).splitlines()[0][:120] if str(exc) else ""})') from None
    return state


def load_resume_state(opt: dict) -> dict | None:
    """Fixed ``basicsr.train.load_resume_state`` (same contract; see the module docstring)."""
    from basicsr.utils import check_resume

    from .experiment_folders import lock

    location = resume_map_location(opt)
    if opt['auto_resume']:
        state_dir = opt['path'].get('training_states') or osp.join('experiments', opt['name'], 'training_states')
        candidates = [osp.join(state_dir, f'{i}.state') for i in state_iters(state_dir)] \
            if osp.isdir(state_dir) else []
    else:
        candidates = [opt['path']['resume_state']] if opt['path'].get('resume_state') else []

    resume_state = None
    for i, path in enumerate(candidates):
        try:
            resume_state = checked_state(path, opt, location)
        except ResumeStateError as exc:
            if not opt['auto_resume'] or i == len(candidates) - 1:
                report(exc)
            print(f'esc_basicsr: {exc}; trying the previous training state.', flush=True)
            continue
        opt['path']['resume_state'] = path
        break
    if resume_state is None:
        return None
    root = opt['path'].get('experiments_root')
    if root and opt.get('rank', 0) == 0:
        lock(root)  # a second run resuming the same experiment at once is refused
    check_resume(opt, resume_state['iter'])
    return resume_state


def patch_resume_modules() -> None:
    """Replace ``load_resume_state`` in ``basicsr.train`` and in a ``python -m basicsr.train`` main."""
    targets = [sys.modules.get('basicsr.train')]
    main = sys.modules.get('__main__')
    if getattr(getattr(main, '__spec__', None), 'name', None) == 'basicsr.train':
        targets.append(main)
    for module in targets:
        current = getattr(module, 'load_resume_state', None)
        if callable(current) and not is_ours(current):
            setattr(module, 'load_resume_state', marked(_fixed_load_resume_state(), current))


def _fixed_load_resume_state() -> Callable:
    def fixed(opt):
        return load_resume_state(opt)

    fixed.__doc__ = load_resume_state.__doc__
    return fixed


def install() -> None:
    """Replace ``load_resume_state`` where it is already imported (idempotent)."""
    patch_resume_modules()
