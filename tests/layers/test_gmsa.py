"""ELAN's grouped multi-scale self-attention (GMSA): window partitioning and shared attention maps."""
from __future__ import annotations

import pytest
import torch

from esc_basicsr.layers.gmsa import GMSA, window_merge, window_partition


def test_window_partition_round_trip():
    x = torch.randn(2, 5, 8, 12)
    tokens = window_partition(x, 4)
    assert tokens.shape == (2 * 2 * 3, 16, 5)
    assert torch.equal(tokens[1, :4, 0], x[0, 0, 0, 4:8])  # window (0, 1), first row, channel 0
    assert torch.equal(window_merge(tokens, 4, 2, 8, 12), x)


def test_gmsa_requires_maps_exactly_when_shared():
    x = torch.randn(1, 6, 8, 8)
    with pytest.raises(ValueError):
        GMSA(6, (2, 4, 8), calc_attn=False)(x)
    _, atns = GMSA(6, (2, 4, 8)).eval()(x)
    assert [a.shape for a in atns] == [(16, 4, 4), (4, 16, 16), (1, 64, 64)]
