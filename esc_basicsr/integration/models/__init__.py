"""BasicSR model classes of esc_basicsr (registered in ``MODEL_REGISTRY`` by name; see ``__all__``).

Each is a thin subclass of one of BasicSR's models; a module per model family.
"""
from __future__ import annotations

from ..basicsr_import import import_basicsr

import_basicsr()  # before any basicsr submodule: waits for another thread that is importing basicsr

from .esr_model import ESRModel  # noqa: E402
from .lte_model import LTEModel  # noqa: E402
from .realhat_models import RealHATGANModel, RealHATMSEModel  # noqa: E402

__all__: list[str] = ['LTEModel', 'ESRModel', 'RealHATMSEModel', 'RealHATGANModel']

# importing this package first imports BasicSR, whose registration hook finds it half-imported:
# its classes are registered here, once they exist (idempotent when BasicSR came first)
from ..registration import register_package  # noqa: E402

register_package(__name__)
