"""Training attention on the CPU: fused forward + recomputing backward equals the reference."""
from __future__ import annotations

import pytest
import torch

from esc_basicsr.archs import ESC
from esc_basicsr.layers import attention_backends, cpu_bias_attention
from esc_basicsr.layers.attention_backends import relative_position_bias, windowed_attention


def _reference(q, k, v, bias):
    return ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1) + bias).softmax(-1) @ v


@pytest.mark.parametrize('chunk', [1, 3, 1 << 30])  # windows recomputed together in the backward
def test_gradients_equal_the_reference(chunk, monkeypatch):
    monkeypatch.setattr(cpu_bias_attention, '_CHUNK_ELEMS', chunk * 2 * 16 * 16)
    torch.manual_seed(0)
    q, k, v = (torch.randn(5, 2, 16, 8, requires_grad=True) for _ in range(3))
    table = torch.randn(2, 7 * 7, requires_grad=True)
    grads = []
    for fn in (cpu_bias_attention.biased_attention, _reference):
        for t in (q, k, v, table):
            t.grad = None
        out = fn(q, k, v, relative_position_bias(table, 4))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append([out.detach()] + [t.grad.clone() for t in (q, k, v, table)])
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


def test_training_uses_it_and_inference_does_not(monkeypatch):
    calls = []
    original = cpu_bias_attention.biased_attention
    monkeypatch.setattr(cpu_bias_attention, 'biased_attention', lambda *a: calls.append(1) or original(*a))
    torch.manual_seed(0)
    model = ESC(dim=16, pdim=4, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2,
                upscaling_factor=2, attn_type='sdpa')
    x = torch.rand(2, 3, 12, 20)
    model(x).mean().backward()
    assert calls == [1] and model.blocks[0].attn.relative_position_bias.grad.abs().sum() > 0
    with torch.no_grad():
        model(x)
    q = torch.randn(2, 2, 16, 8)
    windowed_attention(q, q, q, torch.zeros(2, 49), 4, 'sdpa')  # a bias without gradient
    assert calls == [1]
    assert attention_backends.resolve_backend('auto', torch.device('cpu'), requires_grad=True) == 'sdpa'
