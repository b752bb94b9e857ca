"""Deployment form: fold training-time re-parameterisations into plain layers.

Which function folds which architecture is declared in :mod:`.table` (``ArchSpec.deploy``), beside
each network:

* ESC / ESC-Real / ESCRealM / ESC-LTE's encoder: the geometric ensemble of the shared large kernel
  is computed once and stored (:func:`~.esc_trunk.fold_geometric_ensemble`). The ensemble is
  idempotent, so a folded checkpoint also loads into a training-form model with the same output.
* ELAN: each BatchNorm is folded into the 1x1 convolution before it (``elan_arch.fold_batchnorm``).
* ESC-FP has no re-parameterisation; it is returned unchanged.
"""
from __future__ import annotations

import torch.nn as nn

from .esc_trunk import fold_geometric_ensemble, geometric_ensemble_folded
from .table import ARCHITECTURES

__all__ = ['deploy', 'fold_geometric_ensemble', 'geometric_ensemble_folded', 'is_deployed']


def is_deployed(model: nn.Module) -> bool:
    """Whether :func:`deploy` has already been applied (False for what has nothing to fold)."""
    spec = ARCHITECTURES.get(type(model).__name__)
    return bool(spec is not None and spec.is_deployed is not None and spec.is_deployed(model))


def deploy(model: nn.Module) -> nn.Module:
    """Fold ``model`` in place for inference/export and return it (in eval mode)."""
    spec = ARCHITECTURES.get(type(model).__name__)
    if spec is not None and spec.deploy is not None:
        spec.deploy(model)
    return model.eval()
