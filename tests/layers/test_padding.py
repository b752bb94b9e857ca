"""Padding to the window grid: the export-time, branch-free reflection equals the eager one, and the layers
switch to their graph-generic forms (padding, dynamic depthwise convolution) only while exporting."""
from __future__ import annotations

import pytest
import torch

from esc_basicsr.layers import padding
from esc_basicsr.layers.padding import reflect_pad_to_multiple


@pytest.mark.parametrize('h,w', [(1, 1), (2, 9), (5, 7), (8, 8), (17, 3), (33, 64)])
@pytest.mark.parametrize('multiple', [4, 8, 32])
def test_branch_free_padding_equals_the_layer_padding(h, w, multiple):
    x = torch.randn(2, 3, h, w)
    assert torch.equal(reflect_pad_to_multiple(x, multiple), padding.pad_to_multiple(x, multiple))


def test_layers_switch_to_graph_generic_forms_only_while_exporting(monkeypatch):
    from esc_basicsr.layers import conv_attn

    x, kernels = torch.randn(2, 4, 5, 3), torch.randn(2, 4, 3, 3)
    eager_pad, eager_conv = padding.pad_to_multiple(x, 4), conv_attn.dynamic_depthwise_conv(x, kernels)
    calls = []
    for module, name in ((padding, 'reflect_pad_to_multiple'), (conv_attn, 'dynamic_depthwise_conv_any_batch')):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    padding.pad_to_multiple(x, 4), conv_attn.dynamic_depthwise_conv(x, kernels)
    assert calls == []  # eager: the fast, shape-specialised forms
    monkeypatch.setattr(padding, 'is_exporting', lambda: True)
    monkeypatch.setattr(conv_attn, 'is_exporting', lambda: True)
    assert torch.equal(padding.pad_to_multiple(x, 4), eager_pad)
    assert torch.allclose(conv_attn.dynamic_depthwise_conv(x, kernels), eager_conv, atol=1e-5)
    assert calls == ['reflect_pad_to_multiple', 'dynamic_depthwise_conv_any_batch']
