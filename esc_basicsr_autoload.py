"""Start-up hook of esc_basicsr (imported by ``esc_basicsr_autoload.pth`` in site-packages).

It makes ``python -m basicsr.train/test`` find the ESC/ELAN architectures without any import
added by the user and without editing BasicSR:

* it installs two tiny import hooks and imports nothing else (no torch, no basicsr), so an
  unrelated Python program pays for two list entries;
* when ``basicsr`` finishes importing, ``esc_basicsr`` is imported, which registers its archs in
  BasicSR's ``ARCH_REGISTRY`` (names a BasicSR fork registered itself are left to the fork);
* ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17, still imported by
  basicsr 1.4.2) is provided as an alias of its successor, only if the real module is missing;
* any failure becomes a single ``RuntimeWarning``: start-up never breaks;
* ``ESC_BASICSR_AUTOLOAD=0`` switches all of it off.
"""
from __future__ import annotations

import os
import sys

ENV_SWITCH = 'ESC_BASICSR_AUTOLOAD'
_SHIM_NAME = 'torchvision.transforms.functional_tensor'


def enabled() -> bool:
    """Whether the start-up hook is enabled (``ESC_BASICSR_AUTOLOAD`` not set to 0/false/no/off)."""
    return os.environ.get(ENV_SWITCH, '1').strip().lower() not in ('0', 'false', 'no', 'off')


def _warn(message: str) -> None:
    import warnings
    warnings.warn(f'esc_basicsr: {message}', RuntimeWarning, stacklevel=2)


class _TorchvisionShimLoader:
    """Creates ``torchvision.transforms.functional_tensor`` from ``_functional_tensor``."""

    def create_module(self, spec):
        import importlib
        return importlib.import_module('torchvision.transforms._functional_tensor')

    def exec_module(self, module) -> None:  # the aliased module is already executed
        pass


class TorchvisionShimFinder:
    """Last-resort finder: answers only when no other finder has the real module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _SHIM_NAME:
            return None
        import importlib.util
        try:
            if importlib.util.find_spec('torchvision.transforms._functional_tensor') is None:
                return None
        except ImportError:
            return None
        return importlib.util.spec_from_loader(fullname, _TorchvisionShimLoader())


class BasicsrImportHook:
    """Runs ``esc_basicsr`` registration right after the ``basicsr`` package has executed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'basicsr':
            return None
        sys.meta_path.remove(self)  # one shot; also avoids recursion in the lookup below
        import importlib.util
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            register_into_basicsr()

        spec.loader.exec_module = exec_module
        return spec


def register_into_basicsr() -> None:
    """Import ``esc_basicsr`` (which registers its archs); failures become one warning."""
    try:
        import esc_basicsr  # noqa: F401
    except Exception as exc:  # never break the user's program at start-up
        _warn(f'automatic registration into BasicSR failed ({type(exc).__name__}: {exc}). '
              f'Add "import esc_basicsr" to your script, or set {ENV_SWITCH}=0 to silence this.')


def install_torchvision_shim() -> None:
    """Make ``torchvision.transforms.functional_tensor`` importable if torchvision dropped it."""
    if not any(isinstance(f, TorchvisionShimFinder) for f in sys.meta_path):
        sys.meta_path.append(TorchvisionShimFinder())


def install() -> None:
    """Install the start-up hooks (called from the ``.pth`` file)."""
    if not enabled():
        return
    try:
        install_torchvision_shim()
        if 'basicsr' in sys.modules:
            register_into_basicsr()
        elif not any(isinstance(f, BasicsrImportHook) for f in sys.meta_path):
            sys.meta_path.insert(0, BasicsrImportHook())
    except Exception as exc:  # pragma: no cover - defensive
        _warn(f'start-up hook failed ({type(exc).__name__}: {exc})')
