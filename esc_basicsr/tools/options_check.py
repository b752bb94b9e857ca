"""Checks of what a user hands the tools, before anything is built: ``network_g`` against its
architecture's constructor, weights files. Each failure is a ``ValueError`` naming the file, the key
and the allowed values, which the tools print as ``error: ...`` with exit code 2 (no traceback).

Used by ``infer``/``export``; reading option files and their scale: :mod:`esc_basicsr.utils.options`.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ..utils.options import check_network_g as check_against_registry


def check_network_g(network_g: Any, source: str = 'network_g') -> None:
    """:func:`esc_basicsr.utils.options.check_network_g` against BasicSR's registry (ours registered).

    Raises:
        ValueError: naming ``source``, the key and the allowed values.
    """
    from .loading import arch_registry

    check_against_registry(network_g, arch_registry(), source)


def check_weights_file(path: str | Path) -> None:
    """Refuse what cannot be a PyTorch checkpoint before ``torch.load`` sees it.

    Raises:
        ValueError: missing, a folder, empty, or neither a zip (``torch.save``) nor a pickle file.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f'--weights {path}: no such file')
    if path.is_dir():
        raise ValueError(f'--weights {path}: is a folder, expected a checkpoint file (.pth)')
    try:
        with open(path, 'rb') as f:
            head = f.read(4)
    except OSError as exc:
        raise ValueError(f'--weights {path}: cannot read it ({exc.strerror or exc})') from None
    if not head:
        raise ValueError(f'--weights {path}: empty file')
    if head != b'PK\x03\x04' and head[:1] != b'\x80':  # torch.save zip archive, or a legacy pickle
        raise ValueError(f'--weights {path}: not a PyTorch checkpoint (a .pth/.pt file written by torch.save)')


def load_error_message(path: str | Path, exc: BaseException) -> str | None:
    """A one-line explanation of a ``torch.load`` failure (None if ``exc`` is not one).

    ``weights_only=True`` refuses pickled objects other than tensors and plain containers; torch's
    own message then suggests ``weights_only=False``, which would run code from the file.
    """
    if isinstance(exc, pickle.UnpicklingError):
        return (f'--weights {path}: refused: the file holds pickled objects other than tensors and plain '
                'containers (it was loaded with weights_only=True, so nothing in it was run). Only a '
                'checkpoint saved from a trusted source should be converted, e.g. by re-saving its state_dict.')
    if isinstance(exc, (EOFError, RuntimeError)) and ('zip' in str(exc).lower() or isinstance(exc, EOFError)):
        return f'--weights {path}: truncated or corrupt checkpoint ({type(exc).__name__}: {str(exc)[:120]})'
    return None
