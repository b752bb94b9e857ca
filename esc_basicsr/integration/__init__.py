"""Everything of esc_basicsr that touches BasicSR.

* :mod:`.startup`: the one hook (start-up ``.pth`` and ``import esc_basicsr``) that registers
  esc_basicsr when ``basicsr`` is imported.
* :mod:`.registration`: how architectures (from :data:`esc_basicsr.archs.table.ARCHITECTURES`),
  model classes (:mod:`.models`) and dataset classes (:mod:`.data`) enter BasicSR's registries.
* :mod:`.fixes`: targeted fixes of BasicSR 1.4.2, one module each.
* :mod:`.pipelines`: BasicSR's train/test pipelines rooted at the current directory.

``register()`` does all of it explicitly (it imports BasicSR); :func:`register_all` is what the
start-up hook calls once BasicSR has been imported.
"""
from __future__ import annotations


def register_all() -> list[str]:
    """Register architectures, models and datasets, and install the BasicSR fixes (idempotent);
    BasicSR must be imported. Returns the names added."""
    from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY

    from . import data, fixes, models
    from .registration import package_classes, register_archs, register_classes

    added = register_archs()
    added += register_classes(MODEL_REGISTRY, package_classes(models))
    added += register_classes(DATASET_REGISTRY, package_classes(data))
    fixes.install()
    return added


def register() -> list[str]:
    """Import BasicSR and register everything of esc_basicsr; return the names added."""
    import basicsr  # noqa: F401  (the hook registers once basicsr has executed)

    return register_all()


__all__ = ['register', 'register_all']
