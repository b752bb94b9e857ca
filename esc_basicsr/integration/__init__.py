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
    """Register architectures, models and datasets, and install the BasicSR fixes (idempotent).
    Returns the names added.

    Waits first for another thread's import of BasicSR (no-op inside the start-up hook, see
    :func:`.startup.import_basicsr`); a package of ours that another thread is importing at the same
    moment registers its own classes when its import completes (:func:`.registration.register_package`).
    """
    from .basicsr_import import import_basicsr

    import_basicsr()
    from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY

    from . import fixes
    from .registration import package_classes, register_archs, register_classes

    added = register_archs()
    added += register_classes(MODEL_REGISTRY, package_classes(_imported('models')))
    added += register_classes(DATASET_REGISTRY, package_classes(_imported('data')))
    fixes.install()
    return added


def _imported(name: str):
    """Our package ``name`` (``models`` or ``data``), or ``None`` where importing it now would deadlock:
    another thread is importing it and waits for BasicSR, which this thread is registering into."""
    import importlib

    try:
        return importlib.import_module(f'{__name__}.{name}')
    except RuntimeError as exc:  # importlib's _DeadlockError
        if type(exc).__name__ != '_DeadlockError':
            raise
        return None


def register() -> list[str]:
    """Import BasicSR (waiting for another thread that imports it) and register everything of esc_basicsr;
    return the names added."""
    return register_all()


__all__ = ['register', 'register_all']
