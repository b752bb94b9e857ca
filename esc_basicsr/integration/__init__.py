"""Everything of esc_basicsr that touches BasicSR.

* :mod:`.startup`: the one hook (start-up ``.pth`` and ``import esc_basicsr``) that registers
  esc_basicsr when ``basicsr`` is imported.
* :mod:`.registration`: architectures (from :data:`esc_basicsr.archs.table.ARCHITECTURES`),
  model classes (:mod:`.models`) and dataset classes (:mod:`.data`) into BasicSR's registries.
* :mod:`.fixes`: targeted fixes of BasicSR 1.4.2, one module each.
* :mod:`.pipelines`: BasicSR's train/test pipelines rooted at the current directory.

``register()`` does all of it explicitly (it imports BasicSR).
"""
from __future__ import annotations


def register() -> list[str]:
    """Import BasicSR (waiting for another thread that imports it) and register everything of esc_basicsr;
    return the names added."""
    from .startup import import_basicsr

    import_basicsr()  # the hook registers once basicsr has executed
    from .registration import register_all
    return register_all()


__all__ = ['register']
