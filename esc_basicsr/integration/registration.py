"""How esc_basicsr's classes enter BasicSR's registries (what enters: :func:`esc_basicsr.integration.register_all`).

* ``ARCH_REGISTRY``: every architecture of :data:`esc_basicsr.archs.table.ARCHITECTURES`;
* ``MODEL_REGISTRY``: every class in ``esc_basicsr.integration.models.__all__``;
* ``DATASET_REGISTRY``: every class in ``esc_basicsr.integration.data.__all__``.

Rules, so that esc_basicsr coexists with BasicSR forks that ship their own ``ESC`` (or model/dataset
of the same name):

* a name that is already registered (by the fork) is left alone: the fork keeps its class;
* if a fork registers a name *after* us, its class replaces ours instead of hitting BasicSR's
  duplicate-name ``AssertionError`` (only names registered by esc_basicsr can be replaced).

Safe from several threads (see :mod:`.startup`): what is imported is imported first, the registries are
changed under :data:`.basicsr_import.REGISTRATION_LOCK`.
"""
from __future__ import annotations

import logging
import sys
import types

logger = logging.getLogger('basicsr')


def architectures() -> dict[str, type]:
    """All esc_basicsr architecture classes by registry name."""
    from ..archs.table import ARCHITECTURES

    return {name: spec.cls for name, spec in ARCHITECTURES.items()}


def package_classes(module: types.ModuleType | None) -> dict[str, type]:
    """Classes named in ``__all__`` of the package ``module``; empty for ``None`` (another thread imports
    it) and while that package is still being imported (it imported BasicSR itself, which triggered this
    registration): the package then
    registers its classes when its import completes (:func:`register_package`)."""
    names = getattr(module, '__all__', None)
    if names is None:  # partially initialised
        return {}
    return {name: getattr(module, name) for name in names}


def register_package(package: str) -> list[str]:
    """Register the classes of ``esc_basicsr.integration.models`` or ``.data`` (called at the end of
    their ``__init__``, with their ``__name__``, so that importing them before BasicSR registers them too)."""
    from .basicsr_import import import_basicsr

    import_basicsr()
    from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY

    registry = MODEL_REGISTRY if package.endswith('.models') else DATASET_REGISTRY
    return register_classes(registry, package_classes(sys.modules[package]))


def _yielding_do_register(registry, ours: set[int]):
    original = registry._do_register

    def _do_register(self, name, obj, suffix=None):
        key = f'{name}_{suffix}' if isinstance(suffix, str) else name
        current = self._obj_map.get(key)
        if current is not None and id(current) in ours and current is not obj:
            logger.info(f'esc_basicsr: "{key}" registered by another package replaces esc_basicsr\'s class.')
            del self._obj_map[key]
        original(name, obj, suffix)

    return types.MethodType(_do_register, registry)


def register_classes(registry, classes: dict[str, type]) -> list[str]:
    """Register ``classes`` whose names are still free in ``registry``; return the names added."""
    from .basicsr_import import REGISTRATION_LOCK

    added = []
    with REGISTRATION_LOCK:
        for name, cls in classes.items():
            if name in registry:
                if registry.get(name) is not cls:
                    logger.info(f'esc_basicsr: "{name}" is already registered by another package; keeping it.')
                continue
            registry.register(cls)
            added.append(name)
        ours = getattr(registry, '_esc_basicsr_classes', None)
        if ours is None:
            ours = registry._esc_basicsr_classes = set()
            registry._do_register = _yielding_do_register(registry, ours)
        ours.update(id(c) for c in classes.values())
    return added


def register_archs() -> list[str]:
    """Register every esc_basicsr architecture whose name is still free; return the names added."""
    from basicsr.utils.registry import ARCH_REGISTRY

    return register_classes(ARCH_REGISTRY, architectures())

