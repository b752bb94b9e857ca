"""Fixes of BasicSR 1.4.2's ``--launcher pytorch`` start-up and DDP wrapping (same code in its development version).

a. ``basicsr.utils.dist_util._init_dist_pytorch`` calls ``torch.cuda.set_device(rank %
   torch.cuda.device_count())`` (``ZeroDivisionError`` without a GPU) and always uses NCCL:
   ``parse_options`` hands ``dist_params`` to the slurm launcher only. Fixed: the backend is
   ``dist_params.backend`` of the option file (``-opt``) if it sets one (``nccl`` of a GPU option
   file becomes gloo on a machine without CUDA, said in the start-up line), else NCCL with CUDA
   and gloo without; it is checked to exist on this machine; with CUDA the process takes the GPU
   ``LOCAL_RANK`` (torchrun's per-node index; BasicSR's global-rank modulo is the same on
   equal nodes).
b. ``basicsr.models.base_model.BaseModel.model_to_device`` wraps with
   ``DistributedDataParallel(device_ids=[torch.cuda.current_device()])``, which fails without
   CUDA. Fixed: a model on the CPU is wrapped without ``device_ids`` (gloo); CUDA is unchanged.
c. Neither BasicSR nor the pipelines destroy the process group: at interpreter exit, gloo's threads are torn
   down while still running and a rank may die with ``terminate called without an active exception``
   (SIGABRT) after a complete run, so torchrun reports a failure (about 1 run in 3 of the two-process CPU
   test). Fixed: the process group this start-up made is destroyed at exit (``atexit``), where it still
   exists.

The slurm launcher is left as it is (it needs GPUs); ``srun`` + ``torchrun`` uses the pytorch path.
"""
from __future__ import annotations

import argparse
import atexit
import functools
import os
import sys
from typing import Callable

import torch
import torch.distributed as dist

from ._patching import marked, replace

BACKENDS = ('nccl', 'gloo', 'mpi', 'ucc', 'xccl')


def available_backends() -> list[str]:
    """The torch.distributed backends that can run on this machine (NCCL only with CUDA GPUs)."""
    if not dist.is_available():
        return []
    check = getattr(dist, 'is_backend_available', None)
    found = [b for b in BACKENDS if (check(b) if check else getattr(dist, f'is_{b}_available', lambda: False)())]
    if not torch.cuda.is_available():
        found = [b for b in found if b != 'nccl']
    return found


def resolve_backend(requested: str | None) -> str:
    """``requested`` (``dist_params.backend``) checked against this machine, or the automatic choice.

    Raises:
        ValueError: naming ``dist_params.backend`` and the backends this machine has.
    """
    available = available_backends()
    if requested in (None, '', 'auto'):
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        if backend not in available:
            raise ValueError(f'torch.distributed backend {backend!r} is not available in this PyTorch; '
                             f'set dist_params.backend to one of {available}')
        return backend
    if requested not in available:
        why = ('needs CUDA GPUs, and none is visible on this machine'
               if requested == 'nccl' else 'does not exist on this machine')
        raise ValueError(f'dist_params.backend: {requested!r} {why}; available here: {available} '
                         '(gloo runs on CPUs; leave dist_params.backend out to choose NCCL with CUDA, gloo without)')
    return requested


def option_file_backend(argv: list[str] | None = None) -> str | None:
    """``dist_params.backend`` of the option file named by ``-opt`` in ``argv`` (default ``sys.argv``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str, default=None)
    args, _ = parser.parse_known_args((sys.argv if argv is None else argv)[1:])
    if not args.opt or not os.path.isfile(args.opt):
        return None
    import yaml
    from basicsr.utils.options import ordered_yaml

    with open(args.opt) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0]) or {}
    backend = (opt.get('dist_params') or {}).get('backend')
    return str(backend) if backend is not None else None


def _fixed_init_dist_pytorch(original: Callable) -> Callable:
    @functools.wraps(original)
    def _init_dist_pytorch(backend='nccl', **kwargs):
        # ``backend`` is init_dist's default ('nccl'), never the user's: BasicSR passes no dist_params here
        requested, note = option_file_backend(), ''
        if requested == 'nccl' and not torch.cuda.is_available():  # a GPU option file on CPUs: its CPU equivalent
            requested, note = None, ' (the option file says nccl, which needs CUDA: none here)'
        backend = resolve_backend(requested)
        rank = int(os.environ['RANK'])
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            count = torch.cuda.device_count()
            local_rank = int(os.environ.get('LOCAL_RANK', rank % count))
            if local_rank >= count:
                raise RuntimeError(f'LOCAL_RANK {local_rank} but only {count} GPU(s) are visible: start at most '
                                   f'{count} processes per node (torchrun --nproc_per_node)')
            torch.cuda.set_device(local_rank)
        if rank == 0:
            print(f'esc_basicsr: torch.distributed backend {backend!r}{note}, world size '
                  f'{os.environ.get("WORLD_SIZE", "?")}.', flush=True)
        dist.init_process_group(backend=backend, **kwargs)
        atexit.register(_destroy_process_group)

    return marked(_init_dist_pytorch, original)


def _destroy_process_group() -> None:
    """At exit: destroy the default process group if it still exists (a local step for gloo, no collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _fixed_model_to_device(original: Callable) -> Callable:
    @functools.wraps(original)
    def model_to_device(self, net):
        if not self.opt.get('dist') or self.device.type == 'cuda':
            return original(self, net)
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(net.to(self.device),
                                       find_unused_parameters=self.opt.get('find_unused_parameters', False))

    return marked(model_to_device, original)


def _uses(func: Callable, *names: str) -> bool:
    """Whether ``func``'s code refers to all ``names`` (i.e. it is BasicSR's CUDA-only version)."""
    code = getattr(func, '__code__', None)
    return code is not None and all(n in code.co_names for n in names)


def install() -> None:
    """Replace ``_init_dist_pytorch`` and ``BaseModel.model_to_device`` where they are BasicSR's
    CUDA-only versions (idempotent; a BasicSR that changed them is left alone)."""
    import basicsr.utils.dist_util as dist_util
    from basicsr.models.base_model import BaseModel

    if _uses(dist_util._init_dist_pytorch, 'set_device', 'init_process_group'):
        replace(dist_util, '_init_dist_pytorch', _fixed_init_dist_pytorch)
    if _uses(BaseModel.model_to_device, 'DistributedDataParallel', 'current_device'):
        replace(BaseModel, 'model_to_device', _fixed_model_to_device)
