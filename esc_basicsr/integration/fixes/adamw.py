"""AdamW in BasicSR 1.4.2's ``BaseModel.get_optimizer`` (only ``Adam`` is supported there).

The ESC recipe's ``optim_g: {type: AdamW}`` builds ``torch.optim.AdamW``. BasicSR's development
version supports ``AdamW`` itself, in which case this fallback is never reached.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch

from ._patching import marked, replace


def _wrap_get_optimizer(original: Callable) -> Callable:
    @functools.wraps(original)
    def get_optimizer(self, optim_type, params, lr, **kwargs):
        try:
            return original(self, optim_type, params, lr, **kwargs)
        except NotImplementedError:
            if optim_type != 'AdamW':
                raise
            return torch.optim.AdamW(params, lr, **kwargs)

    return marked(get_optimizer, original)


def install() -> None:
    """Wrap ``basicsr.models.base_model.BaseModel.get_optimizer`` (idempotent)."""
    from basicsr.models.base_model import BaseModel

    replace(BaseModel, 'get_optimizer', _wrap_get_optimizer)
