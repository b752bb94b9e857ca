"""esc_basicsr: ESC (ICCV 2025) and ELAN (ECCV 2022) for BasicSR.

Importing the package is cheap: it imports neither torch nor BasicSR. It installs the one hook of
:mod:`esc_basicsr.integration.startup`, which registers the architectures, models and datasets in
BasicSR's registries when ``basicsr`` is imported (before or after this package). Installed with
pip, the same hook is set up at interpreter start (``esc_basicsr_autoload.pth``).

The networks themselves need torch only: ``esc_basicsr.archs`` and ``esc_basicsr.layers``.
"""
from __future__ import annotations

from typing import Any

from .integration.startup import install as _install_hook
from .version import __version__

_install_hook()

__all__ = ['__version__']


def __getattr__(name: str) -> Any:
    """``esc_basicsr.ESC``, ``esc_basicsr.build``, ``esc_basicsr.ConvAttn``...: the names of
    :mod:`esc_basicsr.archs` and :mod:`esc_basicsr.layers`, imported on first access (PEP 562) so
    that ``import esc_basicsr`` stays cheap."""
    import importlib
    import os

    here = os.path.dirname(__file__)
    submodule = os.path.exists(os.path.join(here, name)) or os.path.exists(os.path.join(here, f'{name}.py'))
    if name.startswith('_') or submodule:
        # private names and not-yet-imported submodules (``from esc_basicsr import tools``) import no torch
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    for module_name in ('archs', 'layers'):
        module = importlib.import_module(f'.{module_name}', __name__)
        if name in module.__all__:
            value = globals()[name] = getattr(module, name)  # resolved once
            return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
