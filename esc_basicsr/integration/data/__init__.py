"""BasicSR dataset classes of esc_basicsr (registered in ``DATASET_REGISTRY`` by name; see ``__all__``)."""
from __future__ import annotations

from ..basicsr_import import import_basicsr

import_basicsr()  # before any basicsr submodule: waits for another thread that is importing basicsr

from .liif_dataset import ArbitraryScalePairedDataset, LIIFDataset  # noqa: E402

__all__: list[str] = ['ArbitraryScalePairedDataset', 'LIIFDataset']

# importing this package first imports BasicSR, whose registration hook finds it half-imported:
# its classes are registered here, once they exist (idempotent when BasicSR came first)
from ..registration import register_package  # noqa: E402

register_package(__name__)
