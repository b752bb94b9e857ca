"""A line before validation in ``basicsr.models.base_model.BaseModel.validation`` (BasicSR 1.4.2; same
code in its development version).

During training BasicSR validates without a word until the metrics: at the end of a CPU training run
that is 53-110 s of silence after ``Save the latest model``, which reads as a hang. (Its test pipeline
says ``Testing <name>...`` first; only training is silent.)

Fixed: during training, ``Validating on <name> (<n> images) ...`` is logged (console and log file, as
BasicSR's own lines) before BasicSR's validation runs; nothing else changes.
"""
from __future__ import annotations

import functools
from typing import Callable

from ._patching import marked, replace


def _announced(original: Callable) -> Callable:
    @functools.wraps(original)
    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        if self.opt.get('is_train') and self.opt.get('rank', 0) == 0:
            from basicsr.utils import get_root_logger

            dataset = getattr(dataloader, 'dataset', None)
            name = getattr(dataset, 'opt', {}).get('name', 'the validation set')
            try:
                count = f' ({len(dataset)} images)'
            except TypeError:  # a dataset without a length
                count = ''
            get_root_logger().info(f'Validating on {name}{count} ...')
        return original(self, dataloader, current_iter, tb_logger, save_img)

    return marked(validation, original)


def expected(func: Callable) -> bool:
    """Whether ``func`` is BasicSR's dispatcher to ``dist_validation`` / ``nondist_validation``."""
    code = getattr(func, '__code__', None)
    return code is not None and {'dist_validation', 'nondist_validation'} <= set(code.co_names)


def install() -> None:
    """Replace ``BaseModel.validation`` where it is BasicSR's (idempotent)."""
    from basicsr.models.base_model import BaseModel

    if expected(getattr(BaseModel.validation, '__wrapped__', BaseModel.validation)):
        replace(BaseModel, 'validation', _announced)
