"""Device and precision choices shared by the command-line tools."""
from __future__ import annotations

import torch

from .cli import PRECISION_CHOICES

PRECISIONS = dict(zip(PRECISION_CHOICES, (torch.float32, torch.float16, torch.bfloat16)))


def resolve_device(name: str = 'auto') -> torch.device:
    """``'auto'`` -> CUDA when available, else CPU; ``'cuda'``/``'cuda:1'``/``'cpu'`` as given.

    Raises:
        ValueError: CUDA requested but not available.
    """
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {name}: CUDA is not available in this PyTorch/machine; use --device cpu')
    return device


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Model/input dtype of ``precision`` (``fp32``, ``fp16``, ``bf16``) on ``device``.

    Raises:
        ValueError: an unknown precision, or fp16 on the CPU (PyTorch's CPU half-precision
            convolutions are slow reference kernels or missing; use bf16 or fp32 there).
    """
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {sorted(PRECISIONS)}, got {precision!r}')
    if precision == 'fp16' and device.type == 'cpu':
        raise ValueError('fp16 needs a CUDA device; on the CPU use --precision bf16 or fp32')
    return PRECISIONS[precision]


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels of ``device`` (no-op on the CPU), so that a timer reads real work."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
