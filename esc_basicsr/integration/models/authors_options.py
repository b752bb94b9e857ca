"""Options the authors' training code reads that esc_basicsr does not implement, refused by name.

Their option files may carry keys of the authors' fork (``ESRModel``, HAT's ``RealHAT*Model``).
Silently ignoring one would train something else than the file says, so each is an error that
names the key and what to do instead.
"""
from __future__ import annotations

import torch

# (path of keys in the option dict) -> why it is refused / what to use instead
UNSUPPORTED: dict[tuple[str, ...], str] = {
    ('train', 'fft_opt'): 'the frequency (FFT) loss of the authors\' fork is not implemented',
    ('train', 'wave_opt'): 'the wavelet loss of the authors\' fork is not implemented',
    ('train', 'mesa_opt'): 'the MESA (EMA self-distillation) loss of the authors\' fork is not implemented',
    ('tile',): 'tiled validation/testing (HAT) is not implemented: whole images are tested; for tiled '
               'inference use "python -m esc_basicsr.infer --tile N"',
}


def reject_unsupported(opt: dict, model_name: str) -> None:
    """Raise ``ValueError`` naming the first key of :data:`UNSUPPORTED` that ``opt`` sets."""
    for keys, why in UNSUPPORTED.items():
        node = opt
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            raise ValueError(f'{".".join(keys)}: {why}; {model_name} refuses it rather than ignoring it. '
                             'Remove the key from the option file.')


def check_device(opt: dict) -> None:
    """A clear error for ``num_gpu`` > 0 on a machine without CUDA (BasicSR would fail in ``.to('cuda')``)."""
    if opt.get('num_gpu', 1) != 0 and not torch.cuda.is_available():
        raise ValueError(f'num_gpu: {opt.get("num_gpu")} but CUDA is not available on this machine; '
                         'set num_gpu: 0 (CPU) or auto')
