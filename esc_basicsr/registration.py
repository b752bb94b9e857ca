"""Registration of the esc_basicsr architectures in BasicSR's ``ARCH_REGISTRY``.

Rules, so that esc_basicsr coexists with BasicSR forks that ship their own ``ESC``:

* a name that is already registered (by the fork) is left alone: the fork keeps its class;
* if a fork registers a name *after* us, its class replaces ours instead of hitting BasicSR's
  duplicate-name ``AssertionError`` (only names registered by esc_basicsr can be replaced).
"""
from __future__ import annotations

import importlib
import logging
import types

logger = logging.getLogger('basicsr')

# module -> classes it contributes (imported lazily so a missing optional module never breaks others)
ARCH_MODULES: dict[str, tuple[str, ...]] = {
    'esc_basicsr.archs.esc_arch': ('ESC',),
    'esc_basicsr.archs.esc_fp_arch': ('ESCFP',),
    'esc_basicsr.archs.esc_real_arch': ('ESCReal',),
    'esc_basicsr.archs.elan_arch': ('ELAN',),
}


def architectures() -> dict[str, type]:
    """All esc_basicsr architecture classes by registry name."""
    out = {}
    for module_name, names in ARCH_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        out.update({name: getattr(module, name) for name in names})
    return out


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


def register_archs() -> list[str]:
    """Register every esc_basicsr architecture whose name is still free; return the names added."""
    from basicsr.utils.registry import ARCH_REGISTRY

    added = []
    archs = architectures()
    for name, cls in archs.items():
        if name in ARCH_REGISTRY:
            if ARCH_REGISTRY.get(name) is not cls:
                logger.info(f'esc_basicsr: "{name}" is already registered by another package; keeping it.')
            continue
        ARCH_REGISTRY.register(cls)
        added.append(name)
    if not getattr(ARCH_REGISTRY, '_esc_basicsr_yields', False):
        ARCH_REGISTRY._do_register = _yielding_do_register(ARCH_REGISTRY, {id(c) for c in archs.values()})
        ARCH_REGISTRY._esc_basicsr_yields = True
    return added
