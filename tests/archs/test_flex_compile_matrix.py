"""No silent unfused FlexAttention (issue 19): one process runs every architecture of the table in
float32, bfloat16 and float16 autocast, evaluation and training, with flex compiled, and dynamo never
gives up on a variant.

Dynamo keeps compiled graphs per code object and, past ``torch._dynamo.config.recompile_limit`` (8)
versions of one code, runs the plain function: for FlexAttention its unfused eager path. Each
precision, grad mode, window and head layout is a version; :class:`CompiledFlex` gives each its own
code. Dynamo's guards and limits do not depend on the compiler backend, so the CPU proves it with
``aot_eager`` (as tests/test_flex_compile.py does); the CUDA test runs inductor's kernel.
"""
from __future__ import annotations

import types

import pytest
import torch

from esc_basicsr.archs.table import ARCHITECTURES
from esc_basicsr.layers import attention_backends
from esc_basicsr.layers.attention_backends import FlexVariant, compile_flex

from ..conftest import requires_cuda
from ..helpers.arch_cases import small_model
from ..helpers.compile_checks import (assert_compiled_flex_ran, assert_no_compile_warnings, assert_one_graph_each,
                                      capture_compile_warnings, flex_counts, frame_counts)

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
DEVICE = 'cuda'
SIZE = (13, 11)  # several windows, padded (one graph serves every size: tests/test_flex_compile.py)


def _run_matrix(device: str) -> dict:
    """Every architecture x precision x (eval, train step); returns the evaluation outputs."""
    outputs = {}
    x = torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(0)).to(device)
    for name in ARCHITECTURES:
        model = small_model(name, attn_type='flex').to(device)
        for dtype in DTYPES:
            amp = dict(device_type=device, dtype=dtype, enabled=dtype != torch.float32)
            with torch.no_grad(), torch.autocast(**amp):
                outputs[name, dtype] = out = model.eval()(x).float()
            assert torch.isfinite(out).all(), (name, dtype)
            with torch.autocast(**amp):
                loss = model.train()(x[..., :8, :8]).float().abs().mean()
            loss.backward()
            assert all(p.grad is not None for p in model.parameters() if p.requires_grad), (name, dtype)
            model.zero_grad(set_to_none=True)
    return outputs


def _assert_no_fallback(compiled, frames_before: dict, capture, expect_training_variants: bool) -> None:
    """Counters and log (through a handler on dynamo's and BasicSR's loggers: ``caplog`` sees neither)."""
    variants = compiled.codes()
    # the matrix meets more variants than one shared cache holds: a shared code would have given up
    assert len(variants) > torch._dynamo.config.recompile_limit, sorted(v.code_name() for v in variants)
    assert any(v.grad_mode for v in variants) == expect_training_variants
    assert_one_graph_each({v.code_name(): code for v, code in variants.items()}, frames_before)
    assert all(compiled.usable(v) for v in variants)
    assert_no_compile_warnings(capture)


def test_every_architecture_precision_and_mode_keeps_the_compiled_flex(monkeypatch):
    torch._dynamo.reset()
    compiled = compile_flex(backend='aot_eager')
    monkeypatch.setattr(attention_backends, '_flex_function', lambda device: compiled)
    before = frame_counts()
    with capture_compile_warnings() as capture:
        outputs = _run_matrix('cpu')
    # on the CPU training runs sdpa (FlexAttention has no CPU backward): the variants are evaluation ones
    _assert_no_fallback(compiled, before, capture, expect_training_variants=False)
    # the compiled path is the attention: equal to sdpa in float32 (the same initial weights)
    x = torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    for name in ARCHITECTURES:
        model = small_model(name, attn_type='sdpa').eval()
        with torch.no_grad():
            torch.testing.assert_close(outputs[name, torch.float32], model(x), atol=1e-5, rtol=0, msg=name)
    torch._dynamo.reset()


def _qkv_and_score_mod(w: int, heads: int = 2, head_dim: int = 16):
    gen = torch.Generator().manual_seed(w)
    q, k, v = (torch.randn(3, heads, w * w, head_dim, generator=gen) for _ in range(3))
    table = torch.randn(heads, (2 * w - 1) ** 2, generator=gen)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + table[h, (kv_idx // w - q_idx // w + w - 1) * (2 * w - 1) + kv_idx % w - q_idx % w + w - 1]

    # each window its own code object (the same computation): dynamo guards on the score_mod's code, so each
    # is a recompile the variant does not key on (the window itself is a dynamic int of one graph)
    code = score_mod.__code__.replace(co_name=f'score_mod_w{w}')
    score_mod = types.FunctionType(code, score_mod.__globals__, code.co_name, None, score_mod.__closure__)
    bias = attention_backends.relative_position_bias(table, w)
    return q, k, v, score_mod, bias


def test_a_variant_dynamo_gives_up_on_is_told_once_and_runs_sdpa(monkeypatch):
    """Should dynamo still stop compiling a variant (here: a limit of 1 and a recompile the variant does
    not key on), the user reads which layer and why, once, and the attention keeps a fused kernel."""
    torch._dynamo.reset()
    compiled = compile_flex(backend='aot_eager')
    variant = FlexVariant(device='cpu', dtype=torch.float32, grad_mode=False, requires_grad=False, autocast=None,
                          heads=2, head_dim=16, window=4)
    before = frame_counts()
    with capture_compile_warnings() as capture, torch._dynamo.config.patch(recompile_limit=1), torch.no_grad():
        for w in (4, 5, 6):  # the window is a constant of the score_mod: each one recompiles
            q, k, v, score_mod, bias = _qkv_and_score_mod(w)
            out = compiled(q, k, v, score_mod, variant)
            torch.testing.assert_close(out, attention_backends._sdpa(q, k, v, bias), atol=1e-5, rtol=0)
    assert not compiled.usable(variant)
    told = [r.getMessage() for r in capture.records if 'stopped compiling' in r.getMessage()]
    assert len(told) == 1, told
    assert 'recompile_limit (1)' in told[0] and '4x4 windows, 2 heads of dim 16' in told[0] and '"sdpa"' in told[0]
    # the checks of the CUDA matrix fail on this broken setting (issue 28: caplog could not): dynamo's own
    # warning reaches the handler on its logger, and the counters show the recompile and the uncompiled call
    assert any(r.name.startswith('torch._dynamo') and 'recompile_limit' in r.getMessage() for r in capture.records), \
        capture.text
    with pytest.raises(AssertionError, match='recompile_limit'):
        assert_no_compile_warnings(capture)
    with pytest.raises(AssertionError, match='recompiled|frames tried 2, compiled 1'):
        assert_one_graph_each({variant.code_name(): compiled.codes()[variant]}, before)

    # from then on the layer runs that variant as sdpa, without calling the compiled flex
    monkeypatch.setattr(attention_backends, '_flex_function', lambda device: compiled)
    calls = []
    monkeypatch.setattr(type(compiled), '__call__', lambda self, *a: calls.append(a))
    q, k, v, _, bias = _qkv_and_score_mod(4)
    with torch.no_grad():
        out = attention_backends.windowed_attention(q, k, v, torch.randn(2, 49), 4, 'flex')
    assert not calls and out.shape == q.shape
    torch._dynamo.reset()


@requires_cuda
def test_cuda_every_architecture_precision_and_mode_keeps_the_fused_kernel(monkeypatch):
    """The same matrix with inductor's kernel on CUDA; training runs flex here (it has a backward)."""
    torch._dynamo.reset()
    compiled = compile_flex()
    monkeypatch.setattr(attention_backends, '_compiled_flex', compiled)
    before, ran = frame_counts(), flex_counts()
    with capture_compile_warnings() as capture:
        _run_matrix(DEVICE)
    _assert_no_fallback(compiled, before, capture, expect_training_variants=True)
    assert_compiled_flex_ran(ran, min_calls=len(compiled.codes()))
