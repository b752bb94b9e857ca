"""``attn_type: Flex`` (the authors' option files) trains on a CPU: FlexAttention has no backward there,
so :func:`resolve_backend` runs the same attention as ``sdpa`` while autograd records, logged once."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

from esc_basicsr.archs import ESC, ESCRealM
from esc_basicsr.layers import attention_backends
from esc_basicsr.layers.attention_backends import resolve_backend
from tests.helpers.weights import randomize_parameters

TINY = dict(dim=16, pdim=4, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2)
CPU = torch.device('cpu')


@pytest.fixture
def fresh_log_state():
    """Forget which fallbacks were logged (they are logged once per process)."""
    saved = set(attention_backends._logged_fallbacks)
    attention_backends._logged_fallbacks.clear()
    yield
    attention_backends._logged_fallbacks.clear()
    attention_backends._logged_fallbacks.update(saved)


def test_resolution(fresh_log_state) -> None:
    assert resolve_backend('flex', CPU, requires_grad=True) == 'sdpa'
    assert resolve_backend('flex', CPU, requires_grad=False) == 'flex'
    assert resolve_backend('flex', torch.device('cuda'), requires_grad=True) == 'flex'  # compiled flex has backward
    assert resolve_backend('naive', CPU, requires_grad=True) == 'naive'
    with torch.no_grad():  # default: whether autograd records
        assert resolve_backend('flex', CPU) == 'flex'
    with torch.enable_grad():
        assert resolve_backend('flex', CPU) == 'sdpa'


def test_logged_once(fresh_log_state, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger='basicsr'):
        for _ in range(3):
            resolve_backend('flex', CPU, requires_grad=True)
        resolve_backend('flex', CPU, requires_grad=False)
    records = [r for r in caplog.records if 'FlexAttention has no backward' in r.getMessage()]
    assert len(records) == 1 and records[0].name == 'basicsr'
    assert '"sdpa"' in records[0].getMessage()


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    return randomize_parameters(model, 0.1, 0)


@pytest.mark.parametrize('arch', ['ESC', 'ESCRealM'])
def test_flex_trains_on_cpu_like_sdpa(arch: str, fresh_log_state) -> None:
    """A training step with attn_type 'Flex' on a CPU: no crash, the same loss and gradients as sdpa."""
    kwargs = dict(TINY, upscaling_factor=2)
    if arch == 'ESCRealM':
        kwargs.update(upsampler='dysample', mid_dim=8)
    cls = ESC if arch == 'ESC' else ESCRealM
    flex = randomized(cls(**kwargs, attn_type='Flex')).train()
    sdpa = randomized(cls(**kwargs, attn_type='sdpa')).train()
    x = torch.rand(2, 3, 12, 10)
    grads = []
    for net in (flex, sdpa):
        loss = net(x).square().mean()
        loss.backward()
        grads.append({n: p.grad for n, p in net.named_parameters()})
    for name, g in grads[0].items():
        assert g is not None and torch.isfinite(g).all(), name
        assert torch.allclose(g, grads[1][name], atol=1e-6), name
    # inference without gradients still runs FlexAttention (same output as the naive reference)
    naive = randomized(cls(**kwargs, attn_type='naive')).eval()
    with torch.no_grad():
        assert (flex.eval()(x) - naive(x)).abs().max().item() < 1e-4


def test_nothing_is_logged_at_import() -> None:
    code = ('import logging; logging.basicConfig(level=logging.DEBUG); '
            'import esc_basicsr.layers.attention_backends, esc_basicsr.archs')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'FlexAttention' not in out.stdout + out.stderr
