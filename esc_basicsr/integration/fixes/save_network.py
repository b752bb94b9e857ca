"""Fix of ``basicsr.models.base_model.BaseModel.save_network`` (BasicSR 1.4.2; same code in its
development version).

BasicSR writes ``net_*_<iter>.pth`` straight to its final name and, after three failed tries, logs "Still
cannot save ... Just ignore it." and trains on: on a full disk the models are 0-byte or partial files and
the run exits 0; a process killed while re-saving a model leaves it truncated beside a complete ``.state``.

Fixed: the same state_dicts are written atomically (:func:`._saving.save_checked`: complete under the final
name or not at all), and a save that fails is an error naming the path and the reason, which stops the
training (as a command: one line, exit code 1) before its ``.state`` is written, so that ``--auto_resume``
picks the last complete pair.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

from ._patching import marked, replace
from ._saving import save_checked


def _fixed_save_network(original: Callable) -> Callable:
    @functools.wraps(original)
    def save_network(self, net, net_label, current_iter, param_key='params'):
        from basicsr.utils.dist_util import get_dist_info

        if get_dist_info()[0] != 0:  # BasicSR's @master_only
            return
        if current_iter == -1:
            current_iter = 'latest'
        save_path = os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
        net = net if isinstance(net, list) else [net]
        param_key = param_key if isinstance(param_key, list) else [param_key]
        assert len(net) == len(param_key), 'The lengths of net and param_key should be the same.'
        save_dict = {}
        for net_, param_key_ in zip(net, param_key):
            state_dict = self.get_bare_model(net_).state_dict()
            save_dict[param_key_] = {(k[7:] if k.startswith('module.') else k): v.cpu() for k, v in state_dict.items()}
        save_checked(save_dict, save_path, what='model')

    return marked(save_network, original)


def expected(func: Callable) -> bool:
    """Whether ``func`` is BasicSR's writer that ignores failed saves (checked by its log message, under
    its ``@master_only`` decorator)."""
    code = getattr(getattr(func, '__wrapped__', func), '__code__', None)
    return code is not None and '. Just ignore it.' in code.co_consts and 'save' in code.co_names


def install() -> None:
    """Replace ``BaseModel.save_network`` where it is BasicSR's (idempotent)."""
    from basicsr.models.base_model import BaseModel

    if expected(BaseModel.save_network):
        replace(BaseModel, 'save_network', _fixed_save_network)
