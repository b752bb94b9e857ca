"""Fix of ``basicsr.models.base_model.BaseModel.save_training_state`` (BasicSR 1.4.2; same code in its
development version).

Like ``save_network`` (:mod:`.save_network`), BasicSR writes ``<iter>.state`` straight to its final name and
ignores a failed save after three tries: a full disk leaves a partial state and the run exits 0.

Fixed: the same state is written atomically (:func:`._saving.save_checked`), and a failure is an error
naming the path and the reason (as a command: one line, exit code 1). Only the main process saves, as before.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

from ._patching import marked, replace
from ._saving import save_checked
from .save_network import expected


def _fixed_save_training_state(original: Callable) -> Callable:
    @functools.wraps(original)
    def save_training_state(self, epoch, current_iter):
        from basicsr.utils.dist_util import get_dist_info

        if current_iter == -1 or get_dist_info()[0] != 0:  # BasicSR's @master_only, and no state for 'latest'
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        save_checked(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'),
                     what='training state')

    return marked(save_training_state, original)


def install() -> None:
    """Replace ``BaseModel.save_training_state`` where it is BasicSR's (idempotent)."""
    from basicsr.models.base_model import BaseModel

    if expected(BaseModel.save_training_state):
        replace(BaseModel, 'save_training_state', _fixed_save_training_state)
