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
from tests.helpers.compile_checks import assert_compiled_flex_ran, assert_gradients_close, flex_counts
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


def _training_grads(model: torch.nn.Module, x: torch.Tensor, autocast: torch.dtype | None = None) -> dict:
    """Gradients of one step's loss (mean squared output) for every parameter."""
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        model(x).float().square().mean().backward()
    return {n: p.grad for n, p in model.named_parameters()}


@requires_cuda
def test_cuda_training_step_with_flex() -> None:
    """A training step of ESC-light through compiled FlexAttention (the bias gradient inside the fused kernel):
    the kernel ran (not a silent sdpa), and the gradients equal the same step's on the CPU in float64 with sdpa.

    Bounds per parameter, plus 1e-6 of all gradients' norm (never run on a GPU yet): strict float32 within 1e-3
    of its norm (float32 vs float64 on the CPU meets it: the test below); bfloat16 autocast within 0.1 (8-bit
    mantissas through 5 blocks). A missing or halved bias gradient fails both (below): a bias table's gradient
    is ~4e-5 of all gradients' norm, so a check over all of them at once would not see it.
    """
    torch.manual_seed(0)
    model = build('esc_light', 2, attn_type='flex').to(DEVICE).train()
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    reference = build('esc_light', 2, attn_type='sdpa').double().train()  # the same step on the CPU, float64
    reference.load_state_dict(model.state_dict())
    ref = _training_grads(reference, x.cpu().double())
    for autocast, rtol in ((None, 1e-3), (torch.bfloat16, 0.1)):
        before = flex_counts()
        with tf32(False):
            grads = _training_grads(model, x, autocast)
        assert_compiled_flex_ran(before, min_calls=1)
        assert_gradients_close(grads, ref, rtol=rtol)


# ----------------------------------------------------------------------------- the CUDA checks, failing on a CPU
TINY = dict(dim=32, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2,
            upscaling_factor=2)  # head dim 16


def test_the_fused_kernel_check_fails_when_flex_runs_as_sdpa(monkeypatch):
    """The check of the CUDA training test passes where the compiled flex entry ran (here: evaluation on the
    CPU, with a test backend) and fails where flex was requested but sdpa ran (training on a CPU, where
    FlexAttention has no backward): what the old test, checking only that gradients exist, let through."""
    from esc_basicsr.archs import ESC
    from esc_basicsr.layers import attention_backends

    torch._dynamo.reset()
    monkeypatch.setattr(attention_backends, '_flex_function',
                        lambda device, c=attention_backends.compile_flex(backend='aot_eager'): c)
    torch.manual_seed(0)
    model = ESC(**TINY, attn_type='flex')
    x = torch.rand(1, 3, 16, 16)
    before = flex_counts()
    with torch.no_grad():
        model.eval()(x)
    assert_compiled_flex_ran(before, min_calls=1)
    before = flex_counts()
    grads = _training_grads(model.train(), x)  # flex requested; sdpa runs (logged once)
    assert all(g is not None for g in grads.values())  # all the old test checked
    with pytest.raises(AssertionError, match='compiled FlexAttention ran 0 times'):
        assert_compiled_flex_ran(before, min_calls=1)
    torch._dynamo.reset()


def test_the_gradient_check_fails_on_a_wrong_bias_gradient(monkeypatch):
    """The check of the CUDA training test: float32 on the CPU meets its bound against float64 (1e-3 per
    parameter), and a kernel that drops the relative position bias's gradient fails it."""
    from esc_basicsr.archs import ESC
    from esc_basicsr.layers import attention_backends

    torch.manual_seed(0)
    model = ESC(**TINY, attn_type='sdpa').train()
    reference = ESC(**TINY, attn_type='sdpa').double().train()
    reference.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    ref = _training_grads(reference, x.double())
    assert_gradients_close(_training_grads(model, x), ref, rtol=1e-3)
    sdpa = attention_backends._sdpa
    monkeypatch.setattr(attention_backends, '_sdpa', lambda q, k, v, bias: sdpa(q, k, v, bias.detach()))
    with pytest.raises(AssertionError, match='no gradient for .*relative_position_bias'):  # dropped
        assert_gradients_close(_training_grads(model, x), ref, rtol=1e-3)
    # half the bias's gradient (the same output): wrong values, per parameter and over all of them
    monkeypatch.setattr(attention_backends, '_sdpa', lambda q, k, v, bias: sdpa(q, k, v, (bias + bias.detach()) / 2))
    halved = _training_grads(model, x)
    with pytest.raises(AssertionError, match='relative gradient error above .*relative_position_bias'):
        assert_gradients_close(halved, ref, rtol=1e-3)
    with pytest.raises(AssertionError, match='relative gradient error above .*relative_position_bias'):
        assert_gradients_close(halved, ref, rtol=0.1)  # the CUDA test's bfloat16 bound
