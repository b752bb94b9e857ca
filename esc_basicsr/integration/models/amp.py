"""Mixed precision for the BasicSR models: which autocast dtype, and whether a gradient scaler.

Options (top level of an option file, beside ``model_type``, as in the authors' files):

* ``use_amp`` (bool, default false): train under :func:`torch.autocast`.
* ``amp_dtype``: ``auto`` (default) | ``fp16`` | ``bf16``. ``auto`` is fp16 with a gradient
  scaler on CUDA (the authors' setting) and bf16 on a CPU (CPU autocast is made for bf16; said
  once in the log). bf16 never needs a scaler (fp32's exponent range). ``fp16`` on a CPU is
  allowed where this PyTorch has a CPU gradient scaler (slow; useful to test the scaler path).

Only the training forward and loss run under autocast; validation and testing stay in fp32.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

logger = logging.getLogger('basicsr')

AMP_DTYPES = {'fp16': torch.float16, 'float16': torch.float16, 'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16}


@dataclass(frozen=True)
class AmpSettings:
    """Resolved mixed-precision settings of one training run.

    Attributes:
        dtype: autocast dtype, ``None`` when ``use_amp`` is off.
        device_type: ``cuda`` or ``cpu``.
    """

    dtype: torch.dtype | None
    device_type: str

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def needs_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range."""
        return self.dtype is torch.float16

    def describe(self) -> str:
        if not self.enabled:
            return 'fp32'
        name = 'fp16' if self.dtype is torch.float16 else 'bf16'
        return f'{name} autocast on {self.device_type}' + (' with a gradient scaler' if self.needs_scaler else '')

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of a training step (a no-op context when AMP is off)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for fp16, else ``None``."""
        return torch.amp.GradScaler(self.device_type) if self.needs_scaler else None


def _cpu_scaler_available() -> bool:
    try:
        return torch.amp.GradScaler('cpu').is_enabled()
    except Exception:  # noqa: BLE001 - a PyTorch without a CPU scaler
        return False


def resolve_amp(opt: dict, device: torch.device) -> AmpSettings:
    """Read ``use_amp``/``amp_dtype`` of ``opt`` for a model on ``device``.

    Raises:
        ValueError: a malformed value, or a dtype this device cannot train with (the key is named).
    """
    use_amp = opt.get('use_amp', False)
    if use_amp is None:
        use_amp = False
    if not isinstance(use_amp, bool):
        raise ValueError(f'use_amp must be true or false, got {use_amp!r}')
    name = opt.get('amp_dtype') or 'auto'
    if not isinstance(name, str) or (name != 'auto' and name not in AMP_DTYPES):
        raise ValueError(f'amp_dtype must be one of auto, fp16, bf16, got {name!r}')
    if not use_amp:
        return AmpSettings(None, device.type)

    if device.type == 'cuda':
        dtype = torch.float16 if name == 'auto' else AMP_DTYPES[name]
        if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError(f'amp_dtype: {name}: {torch.cuda.get_device_name()} has no bf16 support; '
                             'use amp_dtype: fp16 (with a gradient scaler) or use_amp: false')
    elif device.type == 'cpu':
        if name == 'auto':
            dtype = torch.bfloat16
            logger.info('use_amp on the CPU: bf16 autocast without a gradient scaler (fp16 autocast with '
                        'a scaler is the CUDA setting; amp_dtype: fp16 forces it).')
        else:
            dtype = AMP_DTYPES[name]
            if dtype is torch.float16 and not _cpu_scaler_available():
                raise ValueError(f'amp_dtype: {name} on the CPU needs a CPU gradient scaler, which PyTorch '
                                 f'{torch.__version__} lacks; use amp_dtype: bf16 or use_amp: false')
    else:
        raise ValueError(f'use_amp: mixed precision is supported on CUDA and the CPU, not on {device.type}')
    return AmpSettings(dtype, device.type)
