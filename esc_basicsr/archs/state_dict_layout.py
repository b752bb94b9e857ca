"""Reading a network's configuration off its state_dict: the helpers every detector shares.

A detector (``detect_*`` beside each network, declared as ``ArchSpec.detect`` in :mod:`.table`)
returns the constructor arguments a state_dict implies, or ``None`` when the state_dict is not of
its family. These helpers read key layouts and tensor shapes; :class:`LayoutError` says that a
state_dict has a family's signature keys but a layout that family cannot have. Torch only.
"""
from __future__ import annotations

import math
import re
from typing import Mapping

import torch

StateDict = Mapping[str, torch.Tensor]


class LayoutError(ValueError):
    """A state_dict with a family's signature keys but a layout that family cannot have."""


def indices(sd: StateDict, pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (a regex with one group) over the keys."""
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.fullmatch(k))})


def count(sd: StateDict, pattern: str, what: str) -> int:
    """Number of consecutive indices ``0..n-1`` captured by ``pattern``; raises on gaps."""
    found = indices(sd, pattern)
    if not found or found != list(range(len(found))):
        raise LayoutError(f'{what}: expected indices 0..n-1, found {found[:12]}')
    return len(found)


def expansion_ratio(hidden: int, dim: int) -> float:
    """The shortest ratio ``r`` with ``int(dim * r) == hidden`` (ConvFFN's hidden width rule)."""
    for digits in range(1, 8):
        r = round(hidden / dim, digits)
        if int(dim * r) == hidden:
            return r
    raise LayoutError(f'no expansion ratio gives {hidden} hidden channels from {dim}')


def window_of(bias_table: torch.Tensor) -> tuple[int, int]:
    """``(num_heads, window_size)`` of a relative position bias ``(heads, (2w-1)^2)``."""
    heads, n = bias_table.shape
    side = math.isqrt(n)
    if side * side != n or side % 2 == 0:
        raise LayoutError(f'relative_position_bias {tuple(bias_table.shape)} is not (heads, (2w-1)^2)')
    return heads, (side + 1) // 2


def has(sd: StateDict, *keys: str) -> bool:
    """Whether every one of ``keys`` is in ``sd``."""
    return all(k in sd for k in keys)


def has_prefix(sd: StateDict, prefix: str) -> bool:
    """Whether some key of ``sd`` starts with ``prefix``."""
    return any(k.startswith(prefix) for k in sd)
