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

# torch-only names, imported on first access (PEP 562) so that `import esc_basicsr` stays cheap
_LAZY = {
    **dict.fromkeys(('ESC', 'ESCFP', 'ESCReal', 'ESCRealM', 'ESCLTE', 'ELAN', 'build', 'network_g', 'detect',
                     'from_state_dict'), 'archs'),
    **dict.fromkeys(('ConvAttn', 'WindowAttention', 'geometric_ensemble'), 'layers'),
}

__all__ = ['__version__', *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    import importlib
    return getattr(importlib.import_module(f'.{module}', __name__), name)
