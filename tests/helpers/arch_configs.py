"""Small configurations of every architecture of the table, for tests that loop over it.

Each is the architecture's first preset with its sizes shrunk (only keys the preset has are changed, so a
new table row gets a model without editing this file). Window sizes differ per architecture (4 + its
position in the table) so that a loop over the table meets several attention layouts; heads are 2 of
dim 16, the smallest head dim compiled FlexAttention accepts. Models take images in [0, 1] (ELAN through its
``input_range``) and BatchNorm statistics are calibrated on them, as training leaves them (a default-initialised
ELAN's statistics do not match its features: its attention logits reach ~1e4-1e6, near or past float16's range).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from esc_basicsr.archs.table import ARCHITECTURES, ArchSpec
from esc_basicsr.layers.lte import FixedScale

SMALL = dict(dim=32, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, num_heads=2, hidden_dim=16,
             imnet_hidden=[16], mid_dim=8, m_elan=2, c_elan=24)
ARBITRARY_SCALE = 2.5  # what architectures without a fixed scale (ESC-LTE) render at


def accepts_attn_type(spec: ArchSpec) -> bool:
    """Whether the architecture has an attention backend to choose (the table's ``backend_arg``)."""
    return spec.backend_arg is not None


def small_kwargs(name: str) -> dict[str, Any]:
    """Constructor arguments of a small ``name`` (scale included)."""
    spec = ARCHITECTURES[name]
    preset = next(iter(spec.presets.values()))
    kwargs = {key: SMALL.get(key, value) for key, value in preset.items()}
    if 'window_size' in kwargs:
        kwargs['window_size'] = 4 + list(ARCHITECTURES).index(name)
    if spec.scale_arg is not None:
        kwargs[spec.scale_arg] = spec.scales[0]
    if 'input_range' in spec.option_extras:
        kwargs['input_range'] = 1.0  # images in [0, 1], as BasicSR passes them
    return kwargs


def scale_of(name: str) -> float:
    spec = ARCHITECTURES[name]
    return ARBITRARY_SCALE if spec.scale_arg is None else spec.scales[0]


def small_model(name: str, attn_type: str | None = None) -> nn.Module:
    """A small ``name`` (``attn_type``: the attention backend, given to the row's ``backend_arg`` where the
    architecture has one) called as ``model(x)``:
    ``(B, 3, h, w)`` -> ``(B, 3, s*h, s*w)`` (arbitrary-scale networks render at :data:`ARBITRARY_SCALE`)."""
    spec = ARCHITECTURES[name]
    kwargs = small_kwargs(name)
    if attn_type is not None and accepts_attn_type(spec):
        kwargs[spec.backend_arg] = attn_type
    model = calibrate_batchnorm(spec.cls(**kwargs))
    return FixedScale(model, ARBITRARY_SCALE) if spec.scale_arg is None else model


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, batches: int = 4) -> nn.Module:
    """Running statistics of every BatchNorm = the average over a few random [0, 1] images (in place)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model
    training = model.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(batches):
        model(torch.rand(2, 3, 16, 16, generator=gen))
    for norm in norms:
        norm.momentum = 0.1
    return model.train(training)
