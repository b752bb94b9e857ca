"""Reduced precision and CUDA paths (CUDA tests skip cleanly on CPU-only machines)."""
from __future__ import annotations

import pytest
import torch

import esc_basicsr  # noqa: F401
from esc_basicsr.archs import build

from tests.conftest import load_fixture, requires_cuda


def _fixture_model(name: str, **overrides):
    fix = load_fixture(name)
    from basicsr.utils.registry import ARCH_REGISTRY
    model = ARCH_REGISTRY.get(fix['arch'])(**fix['kwargs'], **overrides).eval()
    model.load_state_dict(fix['state_dict'])
    return fix, model


@pytest.mark.parametrize('preset', ['esc_light', 'esc_fp'])
def test_bfloat16_on_cpu_is_close_to_float32(preset: str) -> None:
    torch.manual_seed(0)
    model = build(preset, 2, attn_type='sdpa').eval()  # default initialisation: realistic magnitudes
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        ref = model(x)
        out = model.to(torch.bfloat16)(x.to(torch.bfloat16)).float()
    assert out.shape == ref.shape
    assert ((out - ref).abs().mean() / ref.abs().mean()).item() < 0.02


@requires_cuda
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('attn_type', ['auto', 'sdpa', 'flex', 'naive'])
def test_cuda_reduced_precision(dtype: torch.dtype, attn_type: str) -> None:
    fix, model = _fixture_model('esc_x2.pt', attn_type=attn_type)
    model = model.cuda()
    x = fix['input'].cuda()
    with torch.no_grad(), torch.autocast('cuda', dtype=dtype):
        out = model(x).float().cpu()
    assert (out - fix['output']).abs().mean().item() < 0.02


@requires_cuda
def test_cuda_flex_matches_fixture_in_float32() -> None:
    fix, model = _fixture_model('esc_x2.pt', attn_type='flex')
    with torch.no_grad():
        out = model.cuda()(fix['input'].cuda()).cpu()
    assert (out - fix['output']).abs().max().item() < 1e-3  # TF32 may be enabled on the device


@requires_cuda
def test_cuda_training_step_with_flex() -> None:
    model = build('esc_light', 2, attn_type='flex').cuda().train()
    x = torch.rand(2, 3, 48, 48, device='cuda')
    with torch.autocast('cuda', dtype=torch.bfloat16):
        loss = model(x).float().abs().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
