"""Environment overrides of the layers, read once (not at every forward).

* ``ESC_BASICSR_ATTN=naive|sdpa|flex``: what ``attn_type='auto'`` resolves to.
* ``ESC_BASICSR_CHANNELS_LAST=0|1``: force the memory format of the ESC family.

The values are read at first use and cached (``attn_override.cache_clear()`` re-reads one after
changing ``os.environ`` in a running program).
"""
from __future__ import annotations

import functools
import os

ATTN_ENV = 'ESC_BASICSR_ATTN'
CHANNELS_LAST_ENV = 'ESC_BASICSR_CHANNELS_LAST'


@functools.lru_cache(maxsize=None)
def attn_override() -> str:
    """Lower-cased ``ESC_BASICSR_ATTN`` ('' when unset); validated where it is used."""
    return os.environ.get(ATTN_ENV, '').strip().lower()


@functools.lru_cache(maxsize=None)
def channels_last_override() -> bool | None:
    """``ESC_BASICSR_CHANNELS_LAST`` as a bool, ``None`` when unset."""
    forced = os.environ.get(CHANNELS_LAST_ENV, '').strip().lower()
    if not forced:
        return None
    return forced not in ('0', 'false', 'no', 'off')

