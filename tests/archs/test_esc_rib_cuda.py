"""ESCRIB on CUDA (skipped without a GPU): the authors' fixtures in strict float32 with every backend, and
bf16/fp16 autocast on the kernels the authors restrict themselves to (flash / cuDNN attention).

Every architecture of the table is also compared with its CPU run, forward and training step, by
tests/archs/test_cuda_archs.py. Bounds: float32 reproduces the fixtures within 2e-6 on a CPU and the
other architectures' fixtures within ~1e-6 on an H200 with TF32 off (../shared/reference/GPU.md): 1e-4
fails only for a real defect. Reduced precision: the bounds of the other CUDA tests (fp16 < 1%,
bf16 < 4% mean relative error on default-initialised weights); ESCRIB measured 0.05% / 0.4% on a CPU.
"""
from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from esc_basicsr.archs import ESCRIB, build

from ..conftest import load_fixture, requires_cuda
from ..helpers.cuda import mean_relative_error, tf32

pytestmark = requires_cuda


@pytest.mark.parametrize('backend', ['naive', 'sdpa', 'auto'])
@pytest.mark.parametrize('name', ['escrib_x2.pt', 'escrib_flashbias_x4_small.pt'])
def test_cuda_float32_reproduces_fixture(name: str, backend: str) -> None:
    fix = load_fixture(name)
    net = ESCRIB(**fix['kwargs'], attn_backend=backend).eval()
    net.load_state_dict(fix['state_dict'])
    with tf32(False), torch.no_grad():
        out = net.cuda()(fix['input'].cuda()).cpu()
    assert (out - fix['output']).abs().max().item() < 1e-4


@pytest.mark.parametrize('kind', ['RIB', 'FlashBias'])
@pytest.mark.parametrize('dtype, bound', [(torch.bfloat16, 0.04), (torch.float16, 0.01)])
def test_cuda_autocast_runs_on_flash_or_cudnn_kernels(kind: str, dtype: torch.dtype, bound: float) -> None:
    """q', k', v' (padded to equal widths, multiples of 8) are eligible for the flash / cuDNN kernels:
    restricted to those, SDPA would raise "No available kernel" otherwise."""
    torch.manual_seed(0)
    overrides = {} if kind == 'RIB' else dict(attn_type='FlashBias', rank=None, window_size=32)  # rank 240
    net = build('esc_rib', 2, n_blocks=2, attn_backend='sdpa', **overrides).cuda().eval()
    x = torch.rand(2, 3, 40, 72, device='cuda')
    with tf32(False), torch.no_grad():
        ref = net(x)
    with torch.no_grad(), torch.autocast('cuda', dtype=dtype), \
            sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
        out = net(x)
    assert mean_relative_error(out, ref) < bound
