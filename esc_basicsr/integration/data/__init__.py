"""BasicSR dataset classes of esc_basicsr (registered in ``DATASET_REGISTRY`` by name; see ``__all__``)."""
from __future__ import annotations

from .liif_dataset import ArbitraryScalePairedDataset, LIIFDataset

__all__: list[str] = ['ArbitraryScalePairedDataset', 'LIIFDataset']
