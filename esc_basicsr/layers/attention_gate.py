"""Output gate of a self-attention: ``attention(x) * sigmoid(g(x))``, computed from the attention's input.

The gated attention of the authors' SST code (ESC-RIB): the gate multiplies the attention output
before its output projection. ``g`` is a 1x1 convolution (``Linear``) or a 3x3 depthwise then a 1x1
convolution (``DWC``, ESC-RIB's choice). Sequential indices (``gate.0``, ``gate.1``) are the
checkpoint keys.
"""
from __future__ import annotations

import torch.nn as nn

GATE_TYPES = ('Linear', 'DWC')


class AttentionGate(nn.Sequential):
    """``(B, C, H, W) -> (B, C, H, W)`` gate values in (0, 1).

    Args:
        dim: channels C.
        gate_type: ``Linear`` (1x1 conv) or ``DWC`` (depthwise 3x3, zero-padded, then 1x1 conv), as the
            authors spell them.
    """

    def __init__(self, dim: int, gate_type: str) -> None:
        if gate_type == 'Linear':
            layers: list[nn.Module] = [nn.Conv2d(dim, dim, 1)]
        elif gate_type == 'DWC':
            layers = [nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), nn.Conv2d(dim, dim, 1)]
        else:
            raise ValueError(f'gate_type must be one of {GATE_TYPES} or None (no gate), got {gate_type!r}')
        super().__init__(*layers, nn.Sigmoid())
        self.gate_type = gate_type

    def extra_repr(self) -> str:
        return f'gate_type={self.gate_type!r}'


def attention_gate(dim: int, gate_type: str | None) -> AttentionGate | None:
    """:class:`AttentionGate` of ``gate_type``, or ``None`` for no gate."""
    return None if gate_type is None else AttentionGate(dim, gate_type)
