"""``python -m esc_basicsr.train -opt X.yml [--auto_resume] [--launcher pytorch]`` (also ``esc-train``).

Runs BasicSR's own ``train_pipeline`` (``SRModel`` & co.; esc_basicsr writes no trainer) with
``experiments/`` and ``tb_logger/`` under the **current directory**. ``python -m basicsr.train``
with a pip-installed BasicSR puts them under ``site-packages/`` instead, because its ``__main__``
uses the package's parent folder as ``root_path``. All BasicSR arguments are accepted unchanged.
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Train from a BasicSR option file; ``argv`` defaults to ``sys.argv[1:]``."""
    from basicsr.train import train_pipeline

    import esc_basicsr  # noqa: F401  (registers the archs and installs the BasicSR fixes)

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    train_pipeline(os.path.abspath(os.getcwd()))


if __name__ == '__main__':
    main()
