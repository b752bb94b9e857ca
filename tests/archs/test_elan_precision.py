"""ELAN's calibrated fixture in float32 on CUDA, and ELAN in float16.

ELAN works at ``rgb_range`` 255: its features reach the hundreds and its symmetric attention logits
(q q^T, unscaled) grow with them. Default-initialised, its BatchNorm statistics do not match its
features and the logits reach ~1e6, past float16's 65504 (NaN on an H200, ../shared/reference/GPU.md).
With the statistics training leaves (the fixture's, calibrated on photographs), the largest logit is
~250 and the largest activation ~800: float16 holds them with a margin of ~80x, so ELAN keeps its fp16
support (the spandrel flags, ``infer --fp16``); these tests pin that margin and the result.
"""
from __future__ import annotations

import pytest
import torch

from esc_basicsr.archs import ELAN
from esc_basicsr.layers import gmsa

from ..conftest import load_fixture, requires_cuda
from ..helpers.cuda import mean_relative_error, tf32

DEVICE = 'cuda'
FP16_MAX = torch.finfo(torch.float16).max
# fp16 rounds to 11 bits (4.9e-4 relative); through ELAN-light's 12 blocks the CPU measures 9.3e-4
# mean relative error (half weights or autocast). Bound 1e-2; an overflow gives inf/NaN.
FP16_BOUND = 1e-2


def _fixture_elan() -> tuple[dict, ELAN]:
    fix = load_fixture('elan_light_x4.pt')
    model = ELAN(**fix['kwargs']).eval()
    model.load_state_dict(fix['state_dict'])
    return fix, model


def test_fixture_magnitudes_leave_float16_a_wide_margin(monkeypatch) -> None:
    """The largest attention logit and activation of the calibrated fixture, in float32, are < 1/50 of
    float16's largest value, and a float16 run (CPU) is as close as FP16_BOUND says."""
    fix, model = _fixture_elan()
    logits, activations = [], []
    softmax = torch.softmax
    monkeypatch.setattr(gmsa.torch, 'softmax', lambda t, dim: logits.append(t.abs().max()) or softmax(t, dim=dim))
    hooks = [m.register_forward_hook(lambda m, i, o: activations.append(o.abs().max()))
             for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    with torch.no_grad():
        ref = model(fix['input'])
    for hook in hooks:
        hook.remove()
    assert max(logits).item() < FP16_MAX / 50 and max(activations).item() < FP16_MAX / 50
    with torch.no_grad():
        out = model.half()(fix['input'][..., :16, :16].half())
        ref = model.float()(fix['input'][..., :16, :16])  # fp16 convolutions are slow on a CPU: a crop
    assert torch.isfinite(out).all() and mean_relative_error(out, ref) < FP16_BOUND


@requires_cuda
def test_cuda_fixture_in_float32() -> None:
    """The fixture's README rule for ELAN: float32 within 1e-5 x rgb_range of the float64 output (float32
    rounds at ~3e-5 of outputs in the hundreds); TF32 off."""
    fix, model = _fixture_elan()
    with torch.no_grad(), tf32(False):
        out = model.to(DEVICE)(fix['input'].to(DEVICE)).cpu()
    tol = 1e-5 * fix['kwargs']['rgb_range']
    torch.testing.assert_close(out, fix['output_float64'].float(), atol=tol, rtol=0)


@requires_cuda
@pytest.mark.parametrize('how', ['autocast', 'half'])
def test_cuda_fixture_in_float16(how: str) -> None:
    """``infer --fp16`` (half weights) and autocast: finite, within FP16_BOUND of float32."""
    fix, model = _fixture_elan()
    model = model.to(DEVICE)
    x = fix['input'].to(DEVICE)
    with torch.no_grad(), tf32(False):
        ref = model(x)
        if how == 'autocast':
            with torch.autocast(DEVICE, dtype=torch.float16):
                out = model(x)
        else:
            out = model.half()(x.half())
    assert torch.isfinite(out).all()
    assert mean_relative_error(out, ref) < FP16_BOUND
