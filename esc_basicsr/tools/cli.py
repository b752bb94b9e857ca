"""Argument types and choices shared by the command-line tools (derived, never re-listed)."""
from __future__ import annotations

import argparse
import math

PRECISION_CHOICES = ('fp32', 'fp16', 'bf16')


def attn_choices() -> tuple[str, ...]:
    """The attention backends of the ESC family (``auto``, ``naive``, ``sdpa``, ``flex``)."""
    from ..layers.attention_backends import ATTN_TYPES

    return ATTN_TYPES


def preset_choices() -> list[str]:
    """Preset names of :data:`esc_basicsr.archs.table.ARCHITECTURES` (``esc``, ``esc_light``, ...)."""
    from ..archs.presets import PRESETS

    return sorted(PRESETS)


def preset_name(text: str) -> str:
    """``'ESC-light'`` -> ``'esc_light'`` (``argparse`` type; the spelling of the paper works)."""
    return text.strip().lower().replace('-', '_')


def parse_size(text: str) -> tuple[int, int]:
    """``'176x320'`` (also ``176*320``) -> ``(176, 320)``; both positive (``argparse`` type)."""
    try:
        a, b = (int(v) for v in text.lower().replace('*', 'x').split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected NxM, e.g. 176x320, got {text!r}') from None
    if a <= 0 or b <= 0:
        raise argparse.ArgumentTypeError(f'sizes must be positive, got {text!r}')
    return a, b


def output_scale(text: str) -> int | float:
    """``--scale`` of ``infer`` and ``export``: an int when integral (``2``), else a float (``2.5``, for an
    arbitrary-scale network); finite and > 0 (``argparse`` type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}') from None
    if not value > 0 or value == float('inf'):
        raise argparse.ArgumentTypeError(f'must be a finite number > 0, got {text!r}')
    return int(value) if value.is_integer() else value


def parse_scale(text: str) -> int | float:
    """``--scales`` of ``prepare``: an int when integral (``'2'``, ``'2.0'`` -> 2), else a float (``'2.5'``);
    ValueError unless finite and >= 1."""
    value = float(text)
    if not math.isfinite(value) or value < 1:
        raise ValueError(f'scale must be a number >= 1, got {text!r}')
    return int(value) if value.is_integer() else value
