"""Start-up hook of esc_basicsr, imported by ``esc_basicsr_autoload.pth`` in site-packages.

At interpreter start it imports ``esc_basicsr`` (cheap: no torch, no basicsr), which installs the
one hook of :mod:`esc_basicsr.integration.startup`: registration when ``basicsr`` is imported,
and the torchvision alias that BasicSR 1.4.2 needs.

* ``ESC_BASICSR_AUTOLOAD=0`` switches the automatic registration off; the torchvision alias
  stays (it only answers for a module that does not exist), so ``import basicsr`` keeps working.
  ``import esc_basicsr`` in a script then registers explicitly.
* If esc_basicsr cannot be imported (a broken or half-removed installation), Python still starts,
  and the first ``import basicsr`` says why in one ``RuntimeWarning``.
"""
from __future__ import annotations

import os
import sys

ENV_SWITCH = 'ESC_BASICSR_AUTOLOAD'


def enabled() -> bool:
    """Whether the start-up registration is on (``ESC_BASICSR_AUTOLOAD`` not 0/false/no/off)."""
    return os.environ.get(ENV_SWITCH, '1').strip().lower() not in ('0', 'false', 'no', 'off')


class _ReportOnBasicsrImport:
    """Fallback finder: warns once, at the first ``import basicsr``, that esc_basicsr is broken."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def find_spec(self, fullname, path=None, target=None):
        if fullname == 'basicsr' and self in sys.meta_path:
            sys.meta_path.remove(self)
            import warnings
            warnings.warn(f'esc_basicsr: cannot be imported ({type(self.error).__name__}: {self.error}); '
                          f'its architectures are not registered. Reinstall it, or set {ENV_SWITCH}=0.',
                          RuntimeWarning, stacklevel=2)
        return None


def _install_torchvision_alias_only() -> None:
    """The torchvision alias without executing the ``esc_basicsr`` package (whose import would
    install the registration hook that ``ESC_BASICSR_AUTOLOAD=0`` switches off)."""
    import importlib.util

    spec = importlib.util.find_spec('esc_basicsr')  # locates the package without executing it
    if spec is None or not spec.submodule_search_locations:
        return
    path = os.path.join(spec.submodule_search_locations[0], 'integration', 'fixes', 'torchvision_functional_tensor.py')
    alias_spec = importlib.util.spec_from_file_location('_esc_basicsr_torchvision_alias', path)
    module = importlib.util.module_from_spec(alias_spec)
    alias_spec.loader.exec_module(module)
    module.install()


def install() -> None:
    """Called from the ``.pth`` file; never raises."""
    try:
        if not enabled():
            _install_torchvision_alias_only()
            return
        import esc_basicsr  # noqa: F401  (installs the hook)
    except Exception as exc:  # noqa: BLE001 - a broken installation must not break every Python program
        sys.meta_path.insert(0, _ReportOnBasicsrImport(exc))
