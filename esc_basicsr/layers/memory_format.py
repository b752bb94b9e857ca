"""Memory-format policy of the ESC family.

On the CPU, oneDNN runs ESC's convolutions much faster on channels-last (NHWC) tensors: the
16-channel 13x13 large-kernel convolution takes 116 ms in NHWC vs 292 ms in NCHW at 176x320 on two
threads, and the whole ESC x2 forward drops accordingly (see benchmarks/README.md). Channels-last
also makes the channel LayerNorm and the window partition free views. GPUs keep the input's format.
``ESC_BASICSR_CHANNELS_LAST=0|1`` forces the choice.
"""
from __future__ import annotations

import torch

from .config import channels_last_override


def prefers_channels_last(device: torch.device) -> bool:
    """Whether ESC-family networks should run channels-last on ``device``."""
    forced = channels_last_override()
    return device.type == 'cpu' if forced is None else forced


def to_preferred_format(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` (B, C, H, W) in the memory format preferred on its device (same values)."""
    if x.dim() == 4 and prefers_channels_last(x.device):
        return x.contiguous(memory_format=torch.channels_last)
    return x
