"""The window attentions' inference path (strips of window rows, one bias gather) equals the whole-image path."""
from __future__ import annotations

import pytest
import torch

from esc_basicsr.layers import (FlashBiasAttention, RIBAttention, WindowAttention, attention_backends,
                                low_rank_backends, windows)
from esc_basicsr.layers import window_attention as window_attention_module


@pytest.mark.parametrize('attn_type', ['naive', 'sdpa', 'flex'])
def test_strips_equal_the_whole_image(attn_type, monkeypatch):
    torch.manual_seed(0)
    layer = WindowAttention(dim=8, window_size=4, num_heads=2, attn_type=attn_type).eval()
    with torch.no_grad():
        layer.relative_position_bias.normal_()
    x = torch.randn(2, 8, 13, 10)
    whole = layer(x)  # autograd records: one pass over every window
    gathers = []
    original = attention_backends.relative_position_bias
    monkeypatch.setattr(window_attention_module, 'relative_position_bias',
                        lambda *a: gathers.append(1) or original(*a))
    monkeypatch.setattr(windows, 'STRIP_QKV_ELEMS', 2 * 4 * 12 * 3 * 8)  # one window row a strip
    with torch.no_grad():
        strips = layer(x)
    torch.testing.assert_close(strips, whole, atol=1e-5, rtol=0)
    assert len(gathers) == (0 if attn_type == 'flex' else 1)  # once for the 4 strips, not per strip


@pytest.mark.parametrize('attn_type', ['naive', 'sdpa'])
@pytest.mark.parametrize('kind', ['RIB', 'FlashBias'])
def test_low_rank_strips_equal_the_whole_image(kind, attn_type, monkeypatch):
    """RIB / FlashBias attention share the strips (esc_basicsr.layers.windows): the positional factors are
    computed once per forward, however many strips."""
    torch.manual_seed(0)
    if kind == 'RIB':
        layer = RIBAttention(8, 4, 2, rank=3, hidden_dim=6, n_freqs=2, gate_type='DWC', attn_type=attn_type)
    else:
        layer = FlashBiasAttention(8, 4, 2, rank=3, gate_type='Linear', attn_type=attn_type)
    layer.eval()
    x = torch.randn(2, 8, 13, 10)
    whole = layer(x)
    calls = []
    original = low_rank_backends.low_rank_attention
    monkeypatch.setattr('esc_basicsr.layers.rib_attention.low_rank_attention',
                        lambda *a: calls.append(1) or original(*a))
    factors = []
    real_factors = type(layer).positional_factors
    monkeypatch.setattr(type(layer), 'positional_factors', lambda self: factors.append(1) or real_factors(self))
    monkeypatch.setattr(windows, 'STRIP_QKV_ELEMS', 2 * 4 * 12 * 3 * 8)  # one window row a strip
    with torch.no_grad():
        strips = layer(x)
    torch.testing.assert_close(strips, whole, atol=1e-5, rtol=0)
    assert len(calls) == 4 and len(factors) == 1


@pytest.mark.parametrize('name', ['esc_light', 'esc_rib'])
def test_training_after_inference_mode(name):
    """Caches first filled under torch.inference_mode (validation, infer) hold normal tensors: a training
    step afterwards works (it failed with "Inference tensors cannot be saved for backward")."""
    from esc_basicsr.archs import ESCRIB, build

    attention_backends.relative_position_index.cache_clear()
    torch.manual_seed(0)
    if name == 'esc_rib':
        model = ESCRIB(dim=32, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=7, num_heads=2,
                       upscaling_factor=2, rank=4, rib_hidden_dim=8, gate_type='DWC')
    else:
        model = build(name, 2, dim=32, pdim=8, n_blocks=1, conv_blocks=1, window_size=7, num_heads=2)
    with torch.inference_mode():
        model.eval()(torch.rand(1, 3, 9, 11))
    model.train()(torch.rand(2, 3, 9, 11)).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
