"""ESC's building blocks on their own: the geometric ensemble of the shared large kernel and ConvAttn."""
from __future__ import annotations

import pytest
import torch

from esc_basicsr.layers import ConvAttn, geometric_ensemble


def test_geometric_ensemble_is_d4_invariant_and_idempotent() -> None:
    k = torch.randn(4, 4, 13, 13)
    e = geometric_ensemble(k)
    assert torch.allclose(e, e.flip(-1), atol=1e-6) and torch.allclose(e, e.transpose(-1, -2), atol=1e-6)
    assert torch.allclose(geometric_ensemble(e), e, atol=1e-6)


def test_conv_attn_is_reusable_standalone() -> None:
    lk = torch.nn.Parameter(torch.randn(4, 4, 7, 7))
    attn = ConvAttn(dim=12, pdim=4, kernel_size=7)
    x = torch.randn(3, 12, 10, 9)
    y = attn(x, geometric_ensemble(lk))
    assert y.shape == x.shape
    y.sum().backward()
    assert lk.grad is not None and attn.plk.dwc_proj[1].weight.grad is not None
    with pytest.raises(ValueError, match='pdim'):
        ConvAttn(dim=8, pdim=16)
