"""The one hook that connects esc_basicsr to BasicSR (standard library only).

Installed at interpreter start by ``esc_basicsr_autoload.pth`` (through ``esc_basicsr_autoload``)
and again, idempotently, by ``import esc_basicsr``:

* the torchvision alias of :mod:`.fixes.torchvision_functional_tensor` (always: without it
  ``import basicsr`` fails on current torchvision, also with the automatic registration off);
* registration (:func:`esc_basicsr.integration.register_all`) right after the
  ``basicsr`` package has executed, or at once if it already has. Every import of ``basicsr``
  that executes the package triggers it, however often ``importlib.util.find_spec('basicsr')``
  was called before (each call gets its own wrapped spec; nothing is used up).

Any failure becomes one ``RuntimeWarning``: start-up never breaks. ``ESC_BASICSR_AUTOLOAD=0``
is read by the ``.pth`` file's module (``esc_basicsr_autoload``), which then installs only the
torchvision alias; ``import esc_basicsr`` in a script opts in explicitly.

Threads: see :mod:`.basicsr_import` (waiting for another thread's import of BasicSR, the
registration lock).
"""
from __future__ import annotations

import importlib.util
import sys
import threading
import warnings

from .basicsr_import import basicsr_state, import_basicsr

_local = threading.local()  # re-entrancy guard of the finder's own spec lookup


def _warn(message: str) -> None:
    warnings.warn(f'esc_basicsr: {message}', RuntimeWarning, stacklevel=3)


class _RegisteringLoader:
    """Delegates to BasicSR's own loader and registers esc_basicsr once ``basicsr`` has executed."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def __getattr__(self, name):  # get_filename, get_code, is_package, ... of the real loader
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        register_safely()


class BasicsrImportHook:
    """Meta-path finder at the front of ``sys.meta_path`` that answers for ``basicsr`` only.

    It never removes itself: a spec it returns only acts when the module is executed, and
    registration is idempotent, so repeated lookups or re-imports are harmless.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'basicsr' or getattr(_local, 'busy', False):
            return None
        _local.busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            _local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def register_safely() -> None:
    """Register esc_basicsr into BasicSR; a failure becomes one ``RuntimeWarning``."""
    try:
        from . import register_all
        register_all()
    except Exception as exc:  # never break the user's program at import
        _warn(f'registration into BasicSR failed ({type(exc).__name__}: {exc}). '
              f'Call esc_basicsr.integration.register() in your script to see the error, '
              'or set ESC_BASICSR_AUTOLOAD=0 to silence this.')


def install() -> None:
    """Install the torchvision alias and the registration hook (idempotent, cheap); register at once if
    BasicSR is already imported (waiting for another thread that is importing it)."""
    try:
        from .fixes import torchvision_functional_tensor
        torchvision_functional_tensor.install()
        if not any(isinstance(f, BasicsrImportHook) for f in sys.meta_path):
            sys.meta_path.insert(0, BasicsrImportHook())
        if basicsr_state() == 'importing elsewhere':
            import_basicsr()
        if basicsr_state() != 'absent':
            register_safely()
    except Exception as exc:  # pragma: no cover - defensive
        _warn(f'start-up hook failed ({type(exc).__name__}: {exc})')

