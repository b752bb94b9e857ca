"""The compiled FlexAttention path: one graph for every image size, no graph breaks.

On CUDA, ``attn_type`` flex/auto runs ``torch.compile(flex_attention, dynamic=True)`` with the
relative position bias as a ``score_mod``. Recompiling for each image size (or each block's bias
table) or breaking the graph would cost seconds per new size. Dynamo's behaviour (guards, graph
breaks) does not depend on the compiler backend, so the CPU test compiles with ``aot_eager``
(PyTorch's CPU inductor template for flex does not compile dynamic shapes in this release);
the CUDA test runs the real inductor kernel.
"""
from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from esc_basicsr.archs import ESC
from esc_basicsr.layers import attention_backends

from tests.conftest import requires_cuda

TINY = dict(dim=16, pdim=4, kernel_size=5, n_blocks=2, conv_blocks=1, window_size=8, num_heads=2,
            upscaling_factor=2)
SIZES = [(8, 8), (13, 21), (24, 17), (40, 9)]  # 1 to 15 windows, padded and not


def _run_sizes(model: torch.nn.Module, device: str) -> list[torch.Tensor]:
    outs = []
    with torch.no_grad():
        for h, w in SIZES:
            outs.append(model(torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h)).to(device)))
    return outs


def _compile_stats(monkeypatch, compiled) -> dict:
    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(attention_backends, '_flex_function', lambda device: compiled)
    return counters


def test_flex_compiles_once_for_every_size_without_graph_breaks(monkeypatch):
    torch.manual_seed(0)
    model = ESC(**TINY, attn_type='flex').eval()
    stats = _compile_stats(monkeypatch, attention_backends.compile_flex(backend='aot_eager'))
    outs = _run_sizes(model, 'cpu')
    assert stats['stats']['unique_graphs'] == 1, dict(stats['stats'])  # 4 sizes x 2 blocks: one graph
    assert not stats['graph_break'], dict(stats['graph_break'])
    model_sdpa = ESC(**TINY, attn_type='sdpa').eval()
    model_sdpa.load_state_dict(model.state_dict())
    for out, ref in zip(outs, _run_sizes(model_sdpa, 'cpu')):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch._dynamo.reset()


@requires_cuda
def test_cuda_flex_compiles_once_for_every_size(monkeypatch):
    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(attention_backends, '_compiled_flex', None)
    torch.manual_seed(0)
    model = ESC(**TINY, attn_type='flex').cuda().eval()
    _run_sizes(model, 'cuda')
    assert counters['stats']['unique_graphs'] == 1, dict(counters['stats'])
    assert not counters['graph_break'], dict(counters['graph_break'])


@requires_cuda
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_cuda_training_gradients_through_the_fused_kernel(dtype):
    """auto on CUDA trains through FlexAttention (bias gradient inside the fused kernel): the
    gradients equal those of the sdpa path."""
    torch.manual_seed(0)
    flex = ESC(**TINY, attn_type='auto').cuda().train()
    sdpa = ESC(**TINY, attn_type='sdpa').cuda().train()
    sdpa.load_state_dict(flex.state_dict())
    assert attention_backends.resolve_backend('auto', torch.device('cuda'), requires_grad=True) == 'flex'
    x = torch.rand(2, 3, 24, 20, device='cuda')
    grads = []
    for model in (flex, sdpa):
        with torch.autocast('cuda', dtype=dtype, enabled=dtype != torch.float32):
            model(x).float().square().mean().backward()
        grads.append({n: p.grad.float() for n, p in model.named_parameters()})
    table = [n for n in grads[0] if 'relative_position_bias' in n]
    assert table and all(grads[0][n].abs().sum() > 0 for n in table)
    tol = 1e-3 if dtype == torch.float32 else 5e-2
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=tol, rtol=tol, msg=name)
