"""Every architecture of the table trained one step on CUDA against its CPU run (skipped without CUDA);
CUDA inference against the CPU, for every case of the table: tests/archs/test_table_harness.py.

Small configurations (tests/helpers/arch_cases.py: default initialisation with its zero parameters drawn
small, calibrated BatchNorm statistics, attention heads of dim 16 so that ``auto`` runs compiled
FlexAttention on CUDA), batch 2, an odd size, strict float32 (TF32 off). The CPU runs sdpa; float32 itself
separates these networks' gradients from their float64 run by 2e-5 of the largest one (CPU measurements),
so the bound below leaves a 50x margin and fails only for a real defect (a wrong kernel or index moves
gradients by 1e-2 and more).
"""
from __future__ import annotations

import pytest
import torch

from esc_basicsr.archs.table import ARCHITECTURES

from ..conftest import requires_cuda
from ..helpers.arch_cases import small_model
from ..helpers.cuda import tf32

DEVICE = 'cuda'
SIZE = (2, 3, 13, 11)


def _pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same small network on the CPU (sdpa) and on CUDA (auto: compiled flex where it can)."""
    cpu = small_model(name, attn_type='sdpa')
    gpu = small_model(name, attn_type='auto')
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu.to(DEVICE)


@requires_cuda
@pytest.mark.parametrize('name', list(ARCHITECTURES))
def test_cuda_training_step_reaches_every_parameter(name: str) -> None:
    """One forward/backward in train mode: every parameter gets a finite gradient, equal to the CPU's
    (per parameter, max difference within 1e-3 of the model's largest gradient). Squared error, not L1:
    an output near a kink would make the two devices' gradients differ legitimately."""
    cpu, gpu = _pair(name)
    x = torch.rand(*SIZE, generator=torch.Generator().manual_seed(0))
    grads = []
    for model, device in ((cpu, 'cpu'), (gpu, DEVICE)):
        with tf32(False):
            out = model.train()(x.to(device))
            target = torch.linspace(0, 1, out.numel()).reshape(out.shape).to(device)
            (out - target).square().mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    missing = [n for n, g in grads[1].items() if g is None]
    assert not missing, missing
    assert all(torch.isfinite(g).all() for g in grads[1].values())
    scale = max(g.abs().max().item() for g in grads[0].values())
    for n, g in grads[1].items():
        assert (g.cpu() - grads[0][n]).abs().max().item() <= 1e-3 * scale, n
