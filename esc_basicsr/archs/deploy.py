"""Deployment form: fold training-time re-parameterisations into plain layers.

* ESC / ESC-Real: the geometric ensemble of the shared large kernel is computed once and stored
  (``plk_func`` becomes ``nn.Identity``). The ensemble is idempotent, so a folded checkpoint also
  loads into a training-form model with the same output.
* ELAN: each BatchNorm is folded into the 1x1 convolution before it (see ``elan_arch``).
* ESC-FP has no re-parameterisation; it is returned unchanged.

Which function folds which architecture is declared in :mod:`.table`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import geometric_ensemble


@torch.no_grad()
def fold_geometric_ensemble(model: nn.Module) -> nn.Module:
    """Store the ensembled large kernel in ``model.plk_filter`` and drop the per-forward ensemble."""
    if isinstance(model.plk_func, nn.Identity):
        return model
    model.plk_filter.copy_(geometric_ensemble(model.plk_filter))
    model.plk_func = nn.Identity()
    return model


def geometric_ensemble_folded(model: nn.Module) -> bool:
    """Whether :func:`fold_geometric_ensemble` was applied."""
    return isinstance(getattr(model, 'plk_func', None), nn.Identity)


def is_deployed(model: nn.Module) -> bool:
    """Whether :func:`deploy` has already been applied (False for what has nothing to fold)."""
    from .table import ARCHITECTURES

    spec = ARCHITECTURES.get(type(model).__name__)
    return bool(spec is not None and spec.is_deployed is not None and spec.is_deployed(model))


def deploy(model: nn.Module) -> nn.Module:
    """Fold ``model`` in place for inference/export and return it (in eval mode)."""
    from .table import ARCHITECTURES

    spec = ARCHITECTURES.get(type(model).__name__)
    if spec is not None and spec.deploy is not None:
        spec.deploy(model)
    return model.eval()
