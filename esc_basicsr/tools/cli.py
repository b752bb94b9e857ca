"""Argument types and choices shared by the command-line tools (derived, never re-listed)."""
from __future__ import annotations

import argparse
import math

PRECISION_CHOICES = ('fp32', 'fp16', 'bf16')

# Largest upscaling factor the tools accept. Fixed-scale networks come as x1-x4 (the table's presets); an
# arbitrary-scale network (ESC-LTE) is trained on x1-x4 and, by LIIF's convention, evaluated up to x30 (prepare's
# --scales 2 .. 30); beyond x32 an output is mostly the decoder's extrapolation and its size alone runs out of
# memory (an export at 1e9 asked for 168 GB).
MAX_SCALE = 32
# smallest factor of an arbitrary-scale network: x1/32 (rendering smaller than the input, one pixel of 32x32)
MIN_SCALE = 1 / MAX_SCALE

# bounds of a JSON argument (--basicsr-arch, --flex-kernel-options), checked before it is parsed: a deep
# nesting makes Python's json module recurse until RecursionError
MAX_JSON_CHARS = 65536
MAX_JSON_DEPTH = 32


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
    arbitrary-scale network); from :data:`MIN_SCALE` to :data:`MAX_SCALE` (``argparse`` type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}') from None
    if not MIN_SCALE <= value <= MAX_SCALE:  # NaN fails too
        raise argparse.ArgumentTypeError(f'must be a factor from 1/{MAX_SCALE} to {MAX_SCALE}, got {text!r}')
    return int(value) if value.is_integer() else value


def parse_scale(text: str) -> int | float:
    """``--scales`` of ``prepare``: an int when integral (``'2'``, ``'2.0'`` -> 2), else a float (``'2.5'``);
    ValueError unless finite and >= 1."""
    value = float(text)
    if not math.isfinite(value) or value < 1:
        raise ValueError(f'scale must be a number >= 1, got {text!r}')
    return int(value) if value.is_integer() else value


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number, got {text!r}') from None
    if value < low:
        raise argparse.ArgumentTypeError(f'must be >= {low}, got {text!r}')
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (``argparse`` type: ``--repeats``, ``--rounds``, ``--threads``, ...)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (``argparse`` type: ``--warmup``)."""
    return _int_at_least(text, 0)


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0 (``argparse`` type: ``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}') from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f'must be a finite number of seconds > 0, got {text!r}')
    return value


def integer_scale(text: str) -> int:
    """``--scale`` of ``benchmark``: a whole factor from 1 to :data:`MAX_SCALE` (``argparse`` type)."""
    value = _int_at_least(text, 1)
    if value > MAX_SCALE:
        raise argparse.ArgumentTypeError(f'must be at most {MAX_SCALE}, got {text!r}')
    return value


def json_argument(text: str, origin: str) -> object:
    """``json.loads(text)`` of a command-line argument, bounded: at most :data:`MAX_JSON_CHARS` characters and
    :data:`MAX_JSON_DEPTH` nested arrays/objects, checked before parsing (no RecursionError).

    Raises:
        ValueError: naming ``origin``, for text over the bounds or not JSON.
    """
    import json

    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f'{origin}: {len(text)} characters of JSON, more than the {MAX_JSON_CHARS} accepted')
    depth, deepest, in_string, escaped = 0, 0, False, False
    for ch in text:  # brackets inside strings do not nest
        if in_string:
            escaped, in_string = (not escaped and ch == '\\'), in_string and (escaped or ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in '[{':
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise ValueError(f'{origin}: JSON nested more than {MAX_JSON_DEPTH} levels deep')
        elif ch in ']}':
            depth -= 1
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f'{origin}: not JSON ({exc})') from None
