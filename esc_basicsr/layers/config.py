"""Environment overrides of the layers, read once (not at every forward).

* ``ESC_BASICSR_ATTN=naive|sdpa|flex``: what ``attn_type='auto'`` resolves to.
* ``ESC_BASICSR_CHANNELS_LAST=0|1``: force the memory format of the ESC family.
* ``ESC_BASICSR_FLEX_KERNEL_OPTIONS='{"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}'``
  (advanced): FlexAttention's ``kernel_options`` (a JSON object), passed to every ``flex_attention`` call
  of the window attention. They choose the compiled CUDA kernel's tiling; FlexAttention's eager path
  (CPU) computes the same values whatever they say. Not measured on a GPU yet (benchmarks/README.md).

The values are read at first use and cached (``attn_override.cache_clear()`` etc. re-read one after
changing ``os.environ`` in a running program). A value that is not one of the accepted ones is refused
with a ``ValueError`` naming the variable; the commands (``infer``, ``train``/``test``, ...) call
:func:`check_environment` before any work, so that a typo is one refusal rather than a failure per image.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any

ATTN_ENV = 'ESC_BASICSR_ATTN'
CHANNELS_LAST_ENV = 'ESC_BASICSR_CHANNELS_LAST'
FLEX_KERNEL_OPTIONS_ENV = 'ESC_BASICSR_FLEX_KERNEL_OPTIONS'
ATTN_TYPES = ('auto', 'naive', 'sdpa', 'flex')  # the attention backends' names (layers.attention_backends)
_OFF = ('0', 'false', 'no', 'off')
_ON = ('1', 'true', 'yes', 'on')


@functools.lru_cache(maxsize=None)
def attn_override() -> str:
    """Lower-cased ``ESC_BASICSR_ATTN`` ('' when unset).

    Raises:
        ValueError: not one of :data:`ATTN_TYPES` (case-insensitive); the message names the variable.
    """
    value = os.environ.get(ATTN_ENV, '').strip()
    if value and value.lower() not in ATTN_TYPES:
        raise ValueError(f'{ATTN_ENV}={value!r}: expected one of {", ".join(ATTN_TYPES)}')
    return value.lower()


@functools.lru_cache(maxsize=None)
def channels_last_override() -> bool | None:
    """``ESC_BASICSR_CHANNELS_LAST`` as a bool, ``None`` when unset (any value but 0/false/no/off is on;
    :func:`check_environment` refuses one that is neither)."""
    forced = os.environ.get(CHANNELS_LAST_ENV, '').strip().lower()
    if not forced:
        return None
    return forced not in _OFF


def check_environment() -> None:
    """Validate every ``ESC_BASICSR_*`` override of this module (read afresh from ``os.environ``), before a
    command does any work.

    Raises:
        ValueError: one line naming each variable whose value is not accepted, e.g.
            ``ESC_BASICSR_ATTN='bogus': expected one of auto, naive, sdpa, flex``.
    """
    problems = []
    for read in (attn_override, flex_kernel_options):
        read.cache_clear()
        try:
            read()
        except ValueError as exc:
            problems.append(str(exc))
    forced = os.environ.get(CHANNELS_LAST_ENV, '').strip()
    if forced and forced.lower() not in _OFF + _ON:
        problems.append(f'{CHANNELS_LAST_ENV}={forced!r}: expected 1 or 0 (or true/false, yes/no, on/off)')
    if problems:
        raise ValueError('; '.join(problems))


@functools.lru_cache(maxsize=None)
def flex_kernel_options() -> tuple[tuple[str, Any], ...]:
    """``ESC_BASICSR_FLEX_KERNEL_OPTIONS`` as sorted ``(key, value)`` pairs (``()`` when unset).

    Raises:
        ValueError: not a JSON object of names to numbers, booleans or strings (the message quotes it).
    """
    text = os.environ.get(FLEX_KERNEL_OPTIONS_ENV, '').strip()
    return parse_flex_kernel_options(text, FLEX_KERNEL_OPTIONS_ENV) if text else ()


MAX_FLEX_KERNEL_OPTIONS_CHARS = 4096  # a flat object of kernel options; bounds the text before json.loads


def parse_flex_kernel_options(text: str, origin: str = 'flex kernel options') -> tuple[tuple[str, Any], ...]:
    """``'{"BLOCK_M": 64}'`` -> ``(('BLOCK_M', 64),)``; ``ValueError`` naming ``origin`` unless a JSON object
    of names to numbers, booleans or strings (FlexAttention's ``kernel_options``). The text is bounded before
    parsing (a flat object of a few options is short: 100,000 nested ``[`` would be a RecursionError)."""
    shown = repr(text) if len(text) <= 120 else f'{text[:100]!r}... ({len(text)} characters)'
    if len(text) > MAX_FLEX_KERNEL_OPTIONS_CHARS:
        raise ValueError(f'{origin}={shown}: more than {MAX_FLEX_KERNEL_OPTIONS_CHARS} characters; expected a flat '
                         'JSON object such as {"BLOCK_M": 64, "num_warps": 4}')
    try:
        options = json.loads(text)
    except RecursionError:
        raise ValueError(f'{origin}={shown}: nested too deep; expected a flat JSON object of kernel options') from None
    except json.JSONDecodeError as exc:
        raise ValueError(f'{origin}={shown} is not JSON ({exc}); expected e.g. '
                         '\'{"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}\'') from None
    if not isinstance(options, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float, bool, str)) for k, v in options.items()):
        raise ValueError(f'{origin}={shown}: expected a JSON object of FlexAttention kernel options (names to '
                         'numbers, booleans or strings), e.g. {"BLOCK_M": 64, "num_warps": 4}')
    return tuple(sorted(options.items()))
