"""Reduced precision and CUDA paths (CUDA tests skip cleanly on CPU-only machines; reduced precision on the
CPU, every row of the table: tests/archs/test_table_harness.py).

The CUDA tests fail only for a real defect: reduced precision is measured on weights with realistic
magnitudes (default initialisation; the ``esc_x2.pt`` fixture's random weights overflow float16 in every
backend, naive included), fixture parity runs with TF32 off (cuDNN convolutions default to TF32), and
each tolerance below says where it comes from (measurements: ../shared/reference/GPU.md, H200).
"""
from __future__ import annotations

import pytest
import torch

import esc_basicsr  # noqa: F401
from esc_basicsr.archs import build

from tests.conftest import load_fixture, requires_cuda
from tests.helpers.cuda import mean_relative_error, tf32

ATTN_TYPES = ['auto', 'sdpa', 'flex', 'naive']
DEVICE = 'cuda'


def _fixture_model(name: str, **overrides):
    fix = load_fixture(name)
    from basicsr.utils.registry import ARCH_REGISTRY
    model = ARCH_REGISTRY.get(fix['arch'])(**fix['kwargs'], **overrides).eval()
    model.load_state_dict(fix['state_dict'])
    return fix, model


# autocast vs float32 on the H200, every preset at default initialisation: bf16 0.4-1.7 %, fp16
# 0.05-0.24 % mean relative error. Bounds: 2.4x / 4x the worst measured; a wrong kernel or an overflow
# gives tens of percent or NaN.
AUTOCAST_BOUND = {torch.float16: 0.01, torch.bfloat16: 0.04}


@requires_cuda
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('attn_type', ATTN_TYPES)
def test_cuda_reduced_precision(dtype: torch.dtype, attn_type: str) -> None:
    """Autocast output vs the same network in strict float32, realistic (default-initialised) weights."""
    torch.manual_seed(0)
    model = build('esc_light', 2, attn_type=attn_type).to(DEVICE).eval()
    x = torch.rand(1, 3, 40, 72, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    with torch.no_grad(), tf32(False):
        ref = model(x)
        with torch.autocast(DEVICE, dtype=dtype):
            out = model(x)
    assert torch.isfinite(out).all()
    assert mean_relative_error(out, ref) < AUTOCAST_BOUND[dtype]


@requires_cuda
@pytest.mark.parametrize('attn_type', ATTN_TYPES)
def test_cuda_matches_fixture_in_float32_without_tf32(attn_type: str) -> None:
    """Strict float32: the authors' output within 1e-4 (CPU: 1.8e-5; H200 at 360x640: 1.6e-6)."""
    fix, model = _fixture_model('esc_x2.pt', attn_type=attn_type)
    with torch.no_grad(), tf32(False):
        out = model.to(DEVICE)(fix['input'].to(DEVICE)).cpu()
    assert (out - fix['output']).abs().max().item() < 1e-4


@requires_cuda
def test_cuda_fixture_with_pytorchs_default_tf32() -> None:
    """PyTorch's defaults (cuDNN convolutions in TF32, matmuls not): what users get without asking.

    TF32 rounds each convolution's operands to a 10-bit mantissa (~5e-4 relative), and this fixture's
    random weights (N(0, 0.6/sqrt(fan_in))) amplify it; outputs reach 7. Measured: 8.9e-3 max on an H200;
    rounding both operands of every convolution to TF32 on the CPU gives 4.2e-2 max, 1.1e-2 mean.
    Bounds 0.1 max / 0.025 mean. This bounds the error, it cannot tell small defects apart (a transposed
    bias moves this fixture by 0.075 max): the strict float32 test above does that.
    """
    fix, model = _fixture_model('esc_x2.pt', attn_type='auto')
    with torch.no_grad(), tf32(True, False):
        out = model.to(DEVICE)(fix['input'].to(DEVICE)).cpu()
    diff = (out - fix['output']).abs()
    assert diff.max().item() < 0.1 and diff.mean().item() < 0.025, (diff.max().item(), diff.mean().item())


@requires_cuda
def test_cuda_training_step_with_flex() -> None:
    model = build('esc_light', 2, attn_type='flex').to(DEVICE).train()
    x = torch.rand(2, 3, 48, 48, device=DEVICE)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        loss = model(x).float().abs().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
