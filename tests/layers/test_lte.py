"""The LTE decoder as a layer (any encoder) and its output-size rule."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from esc_basicsr.layers.lte import LTE, scaled_size


def test_lte_layer_with_another_encoder() -> None:
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1))
    net = LTE(encoder, 8, hidden_dim=16, imnet_hidden=(16,)).eval()
    assert {k.split('.')[0] for k in net.state_dict()} == {'encoder', 'coef', 'freq', 'phase', 'imnet'}
    with torch.no_grad():
        assert net.upscale(torch.rand(1, 3, 6, 7), (15, 17)).shape == (1, 3, 15, 17)


@pytest.mark.parametrize('scale', [0, -2, 0.0, float('nan'), float('inf')])
def test_bad_scale_raises(scale: float) -> None:
    with pytest.raises(ValueError, match='scale must be a finite number > 0'):
        scaled_size(10, 10, scale)
