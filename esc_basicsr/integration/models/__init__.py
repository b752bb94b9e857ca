"""BasicSR model classes of esc_basicsr (registered in ``MODEL_REGISTRY`` by name; see ``__all__``).

Each is a thin subclass of one of BasicSR's models; a module per model family.
"""
from __future__ import annotations

from .lte_model import LTEModel

__all__: list[str] = ['LTEModel']
