"""RIB / FlashBias window attention, the attention gate and the SST upsampler as standalone layers (CPU)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from esc_basicsr.layers import (AttentionGate, FlashBiasAttention, RIBAttention, SkipUpsampler, attention_backends,
                                low_rank_attention, low_rank_backends, resolve_low_rank_backend,
                                rib_coordinate_features)
from tests.helpers.weights import randomize_parameters

BACKENDS = ['naive', 'sdpa']
LAYERS = {
    'RIB': lambda **kw: RIBAttention(16, 8, 2, rank=kw.pop('rank', 6), hidden_dim=8, n_freqs=3, **kw),
    'FlashBias': lambda **kw: FlashBiasAttention(16, 8, 2, rank=kw.pop('rank', 6), **kw),
}


def randomized(layer: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn so that the positional bias, the gate and all projections matter."""
    return randomize_parameters(layer, 0.4, seed)


def set_backend(module: torch.nn.Module, backend: str) -> None:
    for m in module.modules():
        if hasattr(m, 'attn_type'):
            m.attn_type = backend


def reference_attention(q, k, v, pos_q, pos_k):
    """softmax(q k^T / sqrt(D) + pos_q pos_k^T / sqrt(R)) v, in float64."""
    q, k, v, pos_q, pos_k = (t.double() for t in (q, k, v, pos_q, pos_k))
    bias = pos_q @ pos_k.transpose(-2, -1) / math.sqrt(pos_q.shape[-1])
    score = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + bias
    return (score.softmax(-1) @ v).float()


# ------------------------------------------------------------------------------------------ features

def test_rib_coordinate_features_layout():
    feats = rib_coordinate_features(4, 2)
    assert feats.shape == (16, 2 + 4 * 2) and feats.dtype == torch.float32
    centres = torch.tensor([-0.75, -0.25, 0.25, 0.75])
    x, y = feats[:, 0].view(4, 4), feats[:, 1].view(4, 4)
    assert torch.equal(x, centres.expand(4, 4))  # x = column, row-major tokens
    assert torch.equal(y, centres[:, None].expand(4, 4))
    base = feats[:, :2]
    for i in range(2):  # per frequency: sin x, sin y, cos x, cos y (no factor pi)
        block = feats[:, 2 + 4 * i: 6 + 4 * i]
        torch.testing.assert_close(block, torch.cat([torch.sin(base * 2 ** i), torch.cos(base * 2 ** i)], -1))


def test_rib_coordinates_are_a_non_persistent_buffer():
    layer = LAYERS['RIB']()
    assert 'rib_coords' in dict(layer.named_buffers())
    assert 'rib_coords' not in layer.state_dict()
    assert layer.double().rib_coords.dtype == torch.float64  # moves with the module


# ------------------------------------------------------------------------------------- the functional

@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('rank', [1, 5, 16])
def test_low_rank_attention_is_attention_with_the_factor_bias(backend, rank):
    torch.manual_seed(rank)
    q, k, v = (torch.randn(3, 2, 25, 8) for _ in range(3))
    pos_q, pos_k = torch.randn(2, 25, rank), torch.randn(2, 25, rank)
    expected = reference_attention(q, k, v, pos_q, pos_k)
    with torch.no_grad():
        torch.testing.assert_close(low_rank_attention(q, k, v, pos_q, pos_k, backend), expected, atol=2e-6, rtol=0)
    # with autograd (one chunk, fused backward on the CPU) too
    torch.testing.assert_close(low_rank_attention(q, k, v, pos_q, pos_k, backend), expected, atol=2e-6, rtol=0)


def test_naive_chunks_in_inference_equal_one_chunk(monkeypatch):
    torch.manual_seed(0)
    q, k, v = (torch.randn(5, 3, 16, 4) for _ in range(3))
    pos_q, pos_k = torch.randn(3, 16, 2), torch.randn(3, 16, 2)
    whole = low_rank_attention(q, k, v, pos_q, pos_k, 'naive')
    monkeypatch.setattr(attention_backends, 'NAIVE_CHUNK_ELEMS', 2 * 16 * 16)  # 2 (window, head) pairs per chunk
    with torch.no_grad():
        chunked = low_rank_attention(q, k, v, pos_q, pos_k, 'naive')
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


def test_sdpa_pads_v_to_the_concatenated_width_and_naive_does_not(monkeypatch):
    seen = []
    real_sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append((q.shape[-1], k.shape[-1], v.shape[-1], kwargs.get('attn_mask'), kwargs.get('scale')))
        return real_sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(low_rank_backends.F, 'scaled_dot_product_attention', spy)
    q, k, v = (torch.randn(2, 2, 9, 8) for _ in range(3))
    pos = torch.randn(2, 9, 5)
    out = low_rank_attention(q, k, v, pos, pos, 'sdpa')
    assert out.shape == (2, 2, 9, 8)
    assert seen == [(13, 13, 13, None, 1.0)]  # equal head dims, no mask: the CPU's fused kernel
    low_rank_attention(q, k, v, pos, pos, 'naive')
    assert len(seen) == 1
    with pytest.raises(ValueError, match='backend'):
        low_rank_attention(q, k, v, pos, pos, 'flex')  # resolved to sdpa before it gets here


def test_cpu_sdpa_choice_is_the_fused_kernel():
    """With v padded, PyTorch's dispatcher picks its fused CPU kernel (not the math path)."""
    q = torch.randn(4, 2, 64, 24)
    math_index = 0  # torch._fused_sdp_choice: 0 = math
    assert torch._fused_sdp_choice(q, q, q[..., :16]) == math_index  # what unpadded v would get
    assert torch._fused_sdp_choice(q, q, q) != math_index


def test_resolver_for_low_rank_attention(attn_env):
    cpu = torch.device('cpu')
    assert resolve_low_rank_backend('naive', cpu) == 'naive'
    assert resolve_low_rank_backend('sdpa', cpu) == 'sdpa'
    assert resolve_low_rank_backend('flex', cpu) == 'sdpa'  # no score_mod left to fuse
    assert resolve_low_rank_backend('auto', cpu) == 'sdpa'
    for env, expected in (('naive', 'naive'), ('sdpa', 'sdpa'), ('flex', 'sdpa')):
        attn_env(env)
        assert resolve_low_rank_backend('auto', cpu) == expected
        assert resolve_low_rank_backend('sdpa', cpu) == 'sdpa'  # an explicit choice wins over the variable


def test_resolver_gives_naive_while_tracing():
    seen = []

    def f(x):
        seen.append(resolve_low_rank_backend('sdpa', x.device))
        return x + 1

    torch.jit.trace(f, torch.zeros(1), check_trace=False)
    assert seen == ['naive']
    f(torch.zeros(1))
    assert seen == ['naive', 'sdpa']


# --------------------------------------------------------------------------------------------- layers

@pytest.mark.parametrize('kind', list(LAYERS))
@pytest.mark.parametrize('gate_type', [None, 'Linear', 'DWC'])
def test_layer_backends_agree_batches_and_sizes(kind, gate_type):
    layer = randomized(LAYERS[kind](gate_type=gate_type)).eval()
    x = torch.randn(3, 16, 13, 21)
    outs = {}
    with torch.no_grad():
        for backend in BACKENDS + ['flex', 'auto']:
            set_backend(layer, backend)
            outs[backend] = layer(x)
            single = torch.cat([layer(x[i:i + 1]) for i in range(3)])
            assert (outs[backend] - single).abs().max() < 1e-5, backend
        for size in [(1, 1), (2, 3), (3, 8), (9, 17)]:  # below half a window too
            y = layer(torch.randn(1, 16, *size))
            assert y.shape == (1, 16, *size) and torch.isfinite(y).all()
    for backend in outs:
        assert (outs[backend] - outs['naive']).abs().max() < 1e-5, backend


@pytest.mark.parametrize('kind', list(LAYERS))
def test_layer_equals_explicit_formula(kind):
    """Window partition, positional factors and the gate, written out for one 8x8 window."""
    layer = randomized(LAYERS[kind](gate_type='DWC')).eval()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        qkv = layer.to_qkv(x).view(3, 2, 8, 64).transpose(-2, -1)  # (qkv, heads, tokens, head_dim)
        pos_q, pos_k = layer.positional_factors()
        out = reference_attention(qkv[0], qkv[1], qkv[2], pos_q, pos_k)  # (heads, tokens, head_dim)
        out = out.transpose(-2, -1).reshape(1, 16, 8, 8) * layer.gate(x)
        torch.testing.assert_close(layer(x), layer.to_out(out), atol=1e-5, rtol=0)


@pytest.mark.parametrize('kind', list(LAYERS))
@pytest.mark.parametrize('backend', BACKENDS + ['flex'])
def test_layer_gradients_reach_every_parameter(kind, backend):
    layer = randomized(LAYERS[kind](gate_type='DWC', attn_type=backend)).train()
    layer(torch.randn(2, 16, 10, 19)).square().mean().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_rib_weights_do_not_depend_on_the_window():
    small = randomized(RIBAttention(16, 4, 2, rank=3, hidden_dim=8, n_freqs=2))
    large = RIBAttention(16, 12, 2, rank=3, hidden_dim=8, n_freqs=2)
    large.load_state_dict(small.state_dict(), strict=True)
    assert large.positional_factors()[0].shape == (2, 144, 3)


def test_default_ranks_are_256_minus_head_dim():
    assert RIBAttention(64, 8, 4).rank == 240
    assert FlashBiasAttention(64, 8, 4).flashbias_q.shape == (4, 64, 240)
    assert RIBAttention(64, 8, 4, rank=16, hidden_dim=None, n_freqs=None).to_hidden.shape == (42, 32)


def test_layer_errors():
    with pytest.raises(ValueError, match='divisible'):
        RIBAttention(10, 8, 3)
    with pytest.raises(ValueError, match='pass rank explicitly'):
        FlashBiasAttention(512, 8, 2)  # head_dim 256: no default rank
    with pytest.raises(ValueError, match='rank'):
        RIBAttention(16, 8, 2, rank=0)
    with pytest.raises(ValueError, match='rank'):
        FlashBiasAttention(16, 8, 2, rank=-4)
    with pytest.raises(ValueError, match='n_freqs'):
        RIBAttention(16, 8, 2, rank=4, n_freqs=-1)
    with pytest.raises(ValueError, match='gate_type'):
        RIBAttention(16, 8, 2, rank=4, gate_type='dwc3')
    with pytest.raises(ValueError, match='attn_type'):
        FlashBiasAttention(16, 8, 2, rank=4, attn_type='flash')
    with pytest.raises(ValueError, match='window_size'):
        FlashBiasAttention(16, 0, 2, rank=4)


def test_gate_layouts():
    assert [type(m).__name__ for m in AttentionGate(8, 'DWC')] == ['Conv2d', 'Conv2d', 'Sigmoid']
    assert AttentionGate(8, 'DWC')[0].groups == 8
    assert [type(m).__name__ for m in AttentionGate(8, 'Linear')] == ['Conv2d', 'Sigmoid']
    g = AttentionGate(8, 'DWC')(torch.randn(2, 8, 1, 1))
    assert g.shape == (2, 8, 1, 1) and ((g > 0) & (g < 1)).all()


# ------------------------------------------------------------------------------------------ upsampler

@pytest.mark.parametrize('kind, scales', [('pixelshuffle_direct', (1, 2, 3, 4)), ('pixelshuffle', (1, 2, 3, 4)),
                                          ('nn+conv', (1, 2, 3, 4, 8))])
def test_skip_upsampler_shapes_and_image_skip(kind, scales):
    for r in scales:
        up = SkipUpsampler(8, r, kind, intermediate_dim=6)
        feats, image = torch.randn(2, 8, 5, 7), torch.rand(2, 3, 5, 7)
        assert up(feats, image).shape == (2, 3, 5 * r, 7 * r)
    if kind == 'pixelshuffle_direct':  # zero head: the output is the image upsampled (nearest)
        up = SkipUpsampler(8, 3, kind)
        torch.nn.init.zeros_(up.up_conv.weight), torch.nn.init.zeros_(up.up_conv.bias)
        torch.testing.assert_close(up(feats, image), F.interpolate(image, scale_factor=3, mode='nearest'))


def test_skip_upsampler_keys_and_errors():
    assert set(SkipUpsampler(8, 2).state_dict()) == {'up_conv.weight', 'up_conv.bias'}
    assert {k.split('.')[0] for k in SkipUpsampler(8, 2, 'pixelshuffle').state_dict()} == \
        {'feature_conv', 'up_conv', 'final_conv'}
    keys = set(SkipUpsampler(8, 4, 'nn+conv').state_dict())
    assert {'f.0.weight', 'f.3.weight', 'f.6.weight', 'f.8.weight', 'f_img.0.weight', 'f_img.3.weight'} <= keys
    with pytest.raises(ValueError, match='powers of two'):
        SkipUpsampler(8, 5, 'nn+conv')
    with pytest.raises(ValueError, match='upsampler_type'):
        SkipUpsampler(8, 2, 'pixelshuffledirect')
    with pytest.raises(ValueError, match='positive integer'):
        SkipUpsampler(8, 0)
