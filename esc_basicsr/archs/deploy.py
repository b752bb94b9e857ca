"""Deployment form: fold training-time re-parameterisations into plain layers.

* ESC / ESC-Real: the geometric ensemble of the shared large kernel is computed once and stored
  (``plk_func`` becomes ``nn.Identity``). The ensemble is idempotent, so a folded checkpoint also
  loads into a training-form model with the same output.
* ELAN: each BatchNorm is folded into the 1x1 convolution before it (see ``elan_arch``).
* ESC-FP has no re-parameterisation; it is returned unchanged.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ..layers import geometric_ensemble

# class name -> in-place folding function; other modules (ELAN) add theirs
DEPLOY_FUNCTIONS: dict[str, Callable[[nn.Module], nn.Module]] = {}


def register_deploy(*class_names: str):
    """Decorator registering an in-place folding function for architectures by class name."""

    def deco(fn: Callable[[nn.Module], nn.Module]) -> Callable[[nn.Module], nn.Module]:
        for name in class_names:
            DEPLOY_FUNCTIONS[name] = fn
        return fn

    return deco


@register_deploy('ESC', 'ESCReal')
@torch.no_grad()
def fold_geometric_ensemble(model: nn.Module) -> nn.Module:
    """Store the ensembled large kernel in ``model.plk_filter`` and drop the per-forward ensemble."""
    if isinstance(model.plk_func, nn.Identity):
        return model
    model.plk_filter.copy_(geometric_ensemble(model.plk_filter))
    model.plk_func = nn.Identity()
    return model


def is_deployed(model: nn.Module) -> bool:
    """Whether :func:`deploy` has already been applied (ESC-FP, which has nothing to fold: False)."""
    if type(model).__name__ == 'ELAN':
        return not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    return isinstance(getattr(model, 'plk_func', None), nn.Identity)


def deploy(model: nn.Module) -> nn.Module:
    """Fold ``model`` in place for inference/export and return it (in eval mode)."""
    name = type(model).__name__
    fn = DEPLOY_FUNCTIONS.get(name)
    if fn is not None:
        fn(model)
    return model.eval()
