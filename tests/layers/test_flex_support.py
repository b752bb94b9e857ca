"""What compiled FlexAttention can run (issue 19): ``auto`` never picks flex for shapes it cannot run,
an explicit ``flex`` says why before anything compiles. All on the CPU: the rule is a pure function of
(head dim, dtype, device type) and the resolver only reads ``device.type``."""
from __future__ import annotations

import logging

import pytest
import torch

from esc_basicsr.layers import WindowAttention, attention_backends
from esc_basicsr.layers.attention_backends import FLEX_MIN_HEAD_DIM, attention_dtype, flex_supports, resolve_backend

CUDA, CPU = torch.device('cuda'), torch.device('cpu')


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    """Forget what was logged (once per process) and any ESC_BASICSR_ATTN of the environment."""
    monkeypatch.setattr(attention_backends, '_logged_fallbacks', set())
    monkeypatch.setattr(attention_backends, 'attn_override', lambda: '')
    monkeypatch.setattr(attention_backends, 'flex_available', lambda: True)


@pytest.mark.parametrize('head_dim', [16, 24, 32, 64, 128])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16, None])
def test_flex_supports_what_inductor_compiles(head_dim, dtype):
    assert flex_supports(head_dim, dtype, 'cuda') is None


@pytest.mark.parametrize('head_dim', [1, 4, 8, 15])
def test_small_heads_are_refused_on_cuda_with_the_head_dim_named(head_dim):
    reason = flex_supports(head_dim, torch.float32, 'cuda')
    assert reason is not None and f'head dim {head_dim}' in reason and str(FLEX_MIN_HEAD_DIM) in reason


def test_float64_is_refused_on_cuda():
    reason = flex_supports(32, torch.float64, 'cuda')
    assert reason is not None and 'float64' in reason


@pytest.mark.parametrize('device_type', ['cpu', 'mps'])
def test_eager_flex_takes_any_shape(device_type):
    """Off CUDA flex runs FlexAttention's eager reference: no compiled-kernel limits."""
    assert flex_supports(4, torch.float64, device_type) is None


def test_auto_runs_sdpa_where_flex_cannot_logged_once_per_reason(caplog):
    with caplog.at_level(logging.INFO, logger='basicsr'):
        assert resolve_backend('auto', CUDA, head_dim=16, dtype=torch.bfloat16) == 'flex'
        for _ in range(3):
            assert resolve_backend('auto', CUDA, head_dim=8, dtype=torch.float32) == 'sdpa'
        assert resolve_backend('auto', CUDA, head_dim=4) == 'sdpa'
        assert resolve_backend('auto', CUDA, head_dim=32, dtype=torch.float64) == 'sdpa'
        assert resolve_backend('auto', CPU, head_dim=4) == 'sdpa'
    messages = [r.getMessage() for r in caplog.records if r.name == 'basicsr']
    assert len(messages) == 3, messages  # head dim 8, head dim 4, float64: once each
    assert 'head dim 8' in messages[0] and '"sdpa"' in messages[0]
    assert 'head dim 4' in messages[1] and 'float64' in messages[2]


def test_explicit_flex_that_cannot_run_says_why():
    with pytest.raises(ValueError, match=r'attn_type "flex" cannot run.*head dim 8.*"auto".*"sdpa"'):
        resolve_backend('flex', CUDA, requires_grad=False, head_dim=8, dtype=torch.float32)
    with pytest.raises(ValueError, match='float64'):
        resolve_backend('flex', CUDA, head_dim=16, dtype=torch.float64)
    assert resolve_backend('flex', CUDA, requires_grad=True, head_dim=16, dtype=torch.float16) == 'flex'
    # the CPU runs the eager reference (any head dim), and trains as sdpa as before
    assert resolve_backend('flex', CPU, requires_grad=False, head_dim=8) == 'flex'
    assert resolve_backend('flex', CPU, requires_grad=True, head_dim=8) == 'sdpa'


def test_the_environment_override_is_an_explicit_request(monkeypatch):
    monkeypatch.setattr(attention_backends, 'attn_override', lambda: 'flex')
    assert resolve_backend('auto', CUDA, head_dim=16, dtype=torch.float32) == 'flex'
    with pytest.raises(ValueError, match='ESC_BASICSR_ATTN=flex cannot run.*head dim 8'):
        resolve_backend('auto', CUDA, head_dim=8, dtype=torch.float32)
    monkeypatch.setattr(attention_backends, 'attn_override', lambda: 'naive')
    assert resolve_backend('auto', CUDA, head_dim=8) == 'naive'


def test_attention_dtype_follows_autocast():
    x = torch.rand(1, 4, 2, 2)
    assert attention_dtype(x) == torch.float32
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert attention_dtype(x) == torch.bfloat16
        assert attention_dtype(x.double()) == torch.float64  # autocast leaves float64 alone
    assert attention_dtype(x.half()) == torch.float16


@pytest.mark.parametrize('dim, num_heads, expected', [(16, 2, 'sdpa'), (32, 2, 'flex'), (48, 3, 'flex')])
def test_window_attention_gives_the_resolver_its_head_dim(dim, num_heads, expected):
    """The layer asks with its own head dim (dim 16 over 2 heads, the reliability tests' size: sdpa on CUDA)."""
    layer = WindowAttention(dim=dim, window_size=4, num_heads=num_heads, attn_type='auto')
    assert layer.backend(CUDA, torch.float32) == expected
    explicit = WindowAttention(dim=dim, window_size=4, num_heads=num_heads, attn_type='flex')
    if expected == 'sdpa':
        with pytest.raises(ValueError, match=f'head dim {dim // num_heads}'):
            explicit.backend(CUDA, torch.float32)
    else:
        assert explicit.backend(CUDA, torch.float32, requires_grad=True) == 'flex'


def test_forward_resolves_with_the_head_dim_and_autocast_dtype(monkeypatch):
    """forward passes what it will compute with: head dim and (under autocast) the autocast dtype."""
    seen = []
    original = attention_backends.resolve_backend

    def spy(attn_type, device, requires_grad=None, **kwargs):
        seen.append(kwargs)
        return original(attn_type, device, requires_grad, **kwargs)

    from esc_basicsr.layers import window_attention
    monkeypatch.setattr(window_attention, 'resolve_backend', spy)
    layer = WindowAttention(dim=12, window_size=4, num_heads=3, attn_type='sdpa').eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        layer(torch.rand(1, 12, 5, 6))
    assert seen == [dict(head_dim=4, dtype=torch.bfloat16)]
