"""Helpers of the CUDA tests: TF32 set for one test and restored afterwards, relative errors."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def tf32(convolutions: bool, matmuls: bool = False) -> Iterator[None]:
    """cuDNN convolutions / CUDA matmuls in TF32 (10-bit mantissa) or strict float32, restored on exit.

    PyTorch's defaults are convolutions on, matmuls off: on an H200 that put ESC's fixture 8.9e-3 from
    its float32 output, against ~1e-6 with both off (../shared/reference/GPU.md).
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = convolutions, matmuls
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def mean_relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``mean|out - ref| / mean|ref|`` in float32."""
    out, ref = out.float(), ref.float()
    return ((out - ref).abs().mean() / ref.abs().mean()).item()
