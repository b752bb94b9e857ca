"""The compiled FlexAttention path: one graph for every image size, no graph breaks.

On CUDA, ``attn_type`` flex/auto runs ``torch.compile(flex_attention, dynamic=True)`` with the
relative position bias as a ``score_mod``. Recompiling for each image size (or each block's bias
table) or breaking the graph would cost seconds per new size. Dynamo's behaviour (guards, graph
breaks) does not depend on the compiler backend, so the CPU test compiles with ``aot_eager``
(PyTorch's CPU inductor template for flex does not compile dynamic shapes in this release);
the CUDA tests run the real inductor kernel, at head dims it compiles (16 and up: inductor refuses
smaller ones) and, below that, check the fallback: ``auto`` runs sdpa, an explicit ``flex`` says why.
"""
from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from esc_basicsr.archs import ESC
from esc_basicsr.layers import WindowAttention, attention_backends

from tests.conftest import requires_cuda
from tests.helpers.compile_checks import (assert_compiled_flex_ran, assert_gradients_close, assert_graphs,
                                          assert_one_graph_each, flex_counts, frame_counts)
from tests.helpers.cuda import tf32

TINY = dict(dim=16, pdim=4, kernel_size=5, n_blocks=2, conv_blocks=1, window_size=8, num_heads=2,
            upscaling_factor=2)  # head dim 8: compiled flex (CUDA) cannot run it, the CPU's eager flex can
DEVICE = 'cuda'


def tiny(head_dim: int) -> dict:
    """TINY with 2 heads of ``head_dim`` channels."""
    return dict(TINY, dim=2 * head_dim)
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


def test_flex_inside_a_network_compiled_on_a_cpu_runs_sdpa():
    """PyTorch's CPU inductor fails to lower flex_attention in ESC's graph (LoweringException in its CPU flex
    template): compiled on a CPU, the network's graph holds sdpa instead (the same attention, the same output)."""
    torch._dynamo.reset()
    counters.clear()
    targets: list[str] = []

    def backend(gm, example_inputs):  # records what the graph calls, then runs it as it is
        targets.extend(str(node.target) for node in gm.graph.nodes)
        return gm.forward

    torch.manual_seed(0)
    model = ESC(**TINY, attn_type='flex').eval()
    reference = ESC(**TINY, attn_type='sdpa').eval()
    reference.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 13, 21, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = torch.compile(model, backend=backend, dynamic=True)(x)
        torch.testing.assert_close(out, reference(x), atol=1e-5, rtol=0)
    assert any('scaled_dot_product_attention' in t for t in targets), targets
    assert not any('flex_attention' in t for t in targets)
    torch._dynamo.reset()


def test_one_graph_shapes_is_scoped_to_our_calls():
    """The shape settings hold inside our compiled calls only: the user's own torch.compile keeps PyTorch's."""
    import torch.fx.experimental._config as fx_config

    defaults = {k: getattr(fx_config, k) for k in attention_backends.ONE_GRAPH_SHAPE_CONFIG}
    with attention_backends.one_graph_shapes():
        assert fx_config.use_duck_shape is False and fx_config.backed_size_oblivious is True
    assert {k: getattr(fx_config, k) for k in defaults} == defaults


# window counts (dim 0 of q, k, v) that duck sizing tied to another size of the first call: one window (a
# size of 1), the heads (4), the head dim (16), the tokens per window (64); each tie made the next count
# compile again ("tensor 'k' size mismatch at index 0. expected 4, actual 1")
FIRST_WINDOW_COUNTS = [1, 2, 3, 4, 16, 64]


@pytest.mark.parametrize('first', FIRST_WINDOW_COUNTS)
def test_per_variant_entry_compiles_once_whatever_the_first_window_count(first):
    heads, head_dim, w = 4, 16, 8
    gen = torch.Generator().manual_seed(first)
    table = torch.randn(heads, (2 * w - 1) ** 2, generator=gen)
    variant = attention_backends.FlexVariant(device='cpu', dtype=torch.float32, grad_mode=False,
                                             requires_grad=False, autocast=None, heads=heads, head_dim=head_dim,
                                             window=w)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + table[h, (kv_idx // w - q_idx // w + w - 1) * (2 * w - 1) + kv_idx % w - q_idx % w + w - 1]

    torch._dynamo.reset()
    counters.clear()
    compiled = attention_backends.compile_flex(backend='aot_eager')
    before = frame_counts()
    with torch.no_grad():
        for n in [first] + [n for n in (1, 4, 16, 7, 64, 2) if n != first]:
            q, k, v = (torch.randn(n, heads, w * w, head_dim, generator=gen) for _ in range(3))
            out = compiled(q, k, v, score_mod, variant)
            ref = attention_backends._sdpa(q, k, v, attention_backends.relative_position_bias(table, w))
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert_one_graph_each(compiled.codes(), before)
    assert_graphs(1)
    torch._dynamo.reset()


@requires_cuda
@pytest.mark.parametrize('head_dim', [16, 24, 32])  # 24: not a power of two (the kernel pads it)
def test_cuda_flex_compiles_once_for_every_size(monkeypatch, head_dim):
    """inductor's kernel: one graph for 4 sizes x 2 blocks, no graph break, sdpa's output (strict fp32)."""
    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(attention_backends, '_compiled_flex', None)
    torch.manual_seed(0)
    model = ESC(**tiny(head_dim), attn_type='flex').to(DEVICE).eval()
    model_sdpa = ESC(**tiny(head_dim), attn_type='sdpa').to(DEVICE).eval()
    model_sdpa.load_state_dict(model.state_dict())
    with tf32(False):
        outs, refs = _run_sizes(model, DEVICE), _run_sizes(model_sdpa, DEVICE)
    assert counters['stats']['unique_graphs'] == 1, dict(counters['stats'])
    assert not counters['graph_break'], dict(counters['graph_break'])
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)  # CPU (aot_eager) above: the same bound


@requires_cuda
def test_cuda_small_heads_run_sdpa_under_auto_and_explicit_flex_says_why(monkeypatch):
    """Head dim 8 (dim 16, 2 heads): inductor refuses flex there. auto runs sdpa (same output), an explicit
    flex raises before anything is compiled."""
    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(attention_backends, '_logged_fallbacks', set())
    torch.manual_seed(0)
    auto = ESC(**TINY, attn_type='auto').to(DEVICE).eval()
    sdpa = ESC(**TINY, attn_type='sdpa').to(DEVICE).eval()
    sdpa.load_state_dict(auto.state_dict())
    with tf32(False):
        for out, ref in zip(_run_sizes(auto, DEVICE), _run_sizes(sdpa, DEVICE)):
            torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)  # the same kernels
    flex = ESC(**TINY, attn_type='flex').to(DEVICE).eval()
    with pytest.raises(ValueError, match='head dim 8'):
        _run_sizes(flex, DEVICE)
    assert not counters['frames'], dict(counters['frames'])  # nothing compiled


@requires_cuda
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_cuda_training_gradients_through_the_fused_kernel(dtype):
    """auto on CUDA trains through FlexAttention (bias gradient inside the fused kernel): the
    gradients equal those of the sdpa path.

    Per parameter, relative to its norm: float32 (TF32 off) within 1e-4 (two float32 kernels differ by
    rounding, ~1e-6); bfloat16 autocast within 5e-2 (two bf16 kernels each round to 8 bits, 4e-3 per
    operation, through 2 blocks). A wrong bias gradient is off by O(1).
    """
    torch.manual_seed(0)
    config = tiny(16)
    flex = ESC(**config, attn_type='auto').to(DEVICE).train()
    sdpa = ESC(**config, attn_type='sdpa').to(DEVICE).train()
    sdpa.load_state_dict(flex.state_dict())
    layer = next(m for m in flex.modules() if isinstance(m, WindowAttention))
    assert layer.backend(torch.device(DEVICE), dtype, requires_grad=True) == 'flex'
    x = torch.rand(2, 3, 24, 20, device=DEVICE)
    grads = []
    before = flex_counts()
    for model in (flex, sdpa):
        with tf32(False), torch.autocast(DEVICE, dtype=dtype, enabled=dtype != torch.float32):
            model(x).float().square().mean().backward()
        grads.append({n: p.grad.float() for n, p in model.named_parameters()})
    assert_compiled_flex_ran(before, min_calls=2)  # flex requested is not flex run: the 2 blocks ran the kernel
    table = [n for n in grads[0] if 'relative_position_bias' in n]
    assert table and all(grads[0][n].abs().sum() > 0 for n in table)
    assert_gradients_close(grads[0], grads[1], rtol=1e-4 if dtype == torch.float32 else 5e-2)
