"""How a fix replaces one BasicSR function: marked wrappers, installed once."""
from __future__ import annotations

from typing import Any, Callable

_MARK = '_esc_basicsr_fix'


def marked(func: Callable, original: Callable) -> Callable:
    """Mark ``func`` as esc_basicsr's replacement of ``original`` (kept as ``__wrapped__``)."""
    setattr(func, _MARK, True)
    func.__wrapped__ = original  # type: ignore[attr-defined]
    return func


def is_ours(func: Any) -> bool:
    """Whether ``func`` is a replacement installed by esc_basicsr."""
    return getattr(func, _MARK, False)


def replace(owner: Any, name: str, wrapper_factory: Callable[[Callable], Callable]) -> bool:
    """Replace ``owner.name`` by ``wrapper_factory(current)`` unless it is missing or already ours."""
    current = getattr(owner, name, None)
    if not callable(current) or is_ours(current):
        return False
    setattr(owner, name, wrapper_factory(current))
    return True
