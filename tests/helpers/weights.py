"""Weights for tests in which every parameter must matter."""
from __future__ import annotations

import torch


def randomize_parameters(module: torch.nn.Module, std: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Draw every parameter of ``module`` from N(0, std) with ``seed`` (in place; returns ``module``).

    Default initialisation zeroes some heads (dynamic-kernel predictors, DySample's scope, gates), which would
    hide components from an output comparison and block gradients.
    """
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, std)
    return module
