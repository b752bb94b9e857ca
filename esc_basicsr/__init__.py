"""esc_basicsr: ESC (ICCV 2025) and ELAN (ECCV 2022) for BasicSR.

Importing the package registers its architectures in BasicSR's ``ARCH_REGISTRY`` (leaving names
that a BasicSR fork registered to the fork). Installed with pip, this also happens automatically
when ``basicsr`` is imported (see ``esc_basicsr_autoload``).
"""
from esc_basicsr_autoload import install_torchvision_shim

install_torchvision_shim()  # basicsr 1.4.2 + torchvision >= 0.17, also without the start-up hook

from .archs import ELAN, ESC, ESCFP, ESCReal  # noqa: E402
from .layers import ConvAttn, WindowAttention, geometric_ensemble  # noqa: E402
from .registration import architectures, register_archs  # noqa: E402
from .version import __version__  # noqa: E402

register_archs()
from .basicsr_fixes import install as _install_basicsr_fixes  # noqa: E402

_install_basicsr_fixes()  # targeted BasicSR resume/data fixes (docs/training.md)

__all__ = ['ConvAttn', 'ELAN', 'ESC', 'ESCFP', 'ESCReal', 'WindowAttention', '__version__', 'architectures',
           'geometric_ensemble', 'register_archs']
