"""GPU option files on a machine without CUDA (part of :mod:`.option_checks`): their CUDA-only
settings become the CPU equivalents, and what has none is refused before anything is created.
"""
from __future__ import annotations

# BasicSR's Real-ESRGAN models put their degradation tools on CUDA in __init__; ours run anywhere
CUDA_ONLY_MODELS = {'RealESRNetModel': 'RealHATMSEModel', 'RealESRGANModel': 'RealHATGANModel'}


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
