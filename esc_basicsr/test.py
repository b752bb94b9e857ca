"""``python -m esc_basicsr.test -opt X.yml`` (also ``esc-test``).

Runs BasicSR's own ``test_pipeline`` with ``results/`` under the **current directory** (see
:mod:`esc_basicsr.train` for why ``python -m basicsr.test`` writes them under ``site-packages/``
with a pip-installed BasicSR).
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Test from a BasicSR option file; ``argv`` defaults to ``sys.argv[1:]``."""
    from basicsr.test import test_pipeline

    import esc_basicsr  # noqa: F401  (registers the archs and installs the BasicSR fixes)

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    test_pipeline(os.path.abspath(os.getcwd()))


if __name__ == '__main__':
    main()
