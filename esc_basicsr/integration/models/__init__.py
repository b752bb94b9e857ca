"""BasicSR model classes of esc_basicsr (registered in ``MODEL_REGISTRY`` by name; see ``__all__``).

Each is a thin subclass of one of BasicSR's models; a module per model family.
"""
from __future__ import annotations

from .esr_model import ESRModel
from .lte_model import LTEModel
from .realhat_models import RealHATGANModel, RealHATMSEModel

__all__: list[str] = ['LTEModel', 'ESRModel', 'RealHATMSEModel', 'RealHATGANModel']

# importing this package first imports BasicSR, whose registration hook finds it half-imported:
# its classes are registered here, once they exist (idempotent when BasicSR came first)
from ..registration import register_package  # noqa: E402

register_package(__name__)
