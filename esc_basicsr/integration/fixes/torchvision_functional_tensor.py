"""BasicSR 1.4.2 + torchvision >= 0.17: provide ``torchvision.transforms.functional_tensor``.

basicsr 1.4.2 (``basicsr/data/degradations.py``) imports ``torchvision.transforms.functional_tensor``,
which torchvision 0.17 renamed to ``_functional_tensor``. A last-resort finder answers for the old
name with the new module, only when no other finder has the real one (older torchvision), so
nothing on disk is patched. Standard library only: it runs at interpreter start.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

OLD_NAME = 'torchvision.transforms.functional_tensor'
NEW_NAME = 'torchvision.transforms._functional_tensor'


class _AliasLoader:
    """Returns the already-imported successor module for the old name."""

    def create_module(self, spec):
        return importlib.import_module(NEW_NAME)

    def exec_module(self, module) -> None:  # the aliased module is already executed
        pass


class TorchvisionShimFinder:
    """Meta-path finder at the end of ``sys.meta_path``: answers only for ``OLD_NAME``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != OLD_NAME:
            return None
        try:
            if importlib.util.find_spec(NEW_NAME) is None:
                return None
        except ImportError:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader())


def install() -> None:
    """Append the finder to ``sys.meta_path`` (idempotent, also across copies of this module)."""
    if not any(type(f).__name__ == TorchvisionShimFinder.__name__ for f in sys.meta_path):
        sys.meta_path.append(TorchvisionShimFinder())
