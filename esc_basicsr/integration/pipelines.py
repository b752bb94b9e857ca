"""BasicSR's own train/test pipelines, rooted at the current directory.

``python -m basicsr.train`` with a pip-installed BasicSR roots ``experiments/``, ``results/`` and
``tb_logger/`` at ``site-packages/`` (its ``__main__`` uses the package's parent folder as
``root_path``). ``python -m esc_basicsr.train`` / ``.test`` call the same pipelines with the
current directory as ``root_path``; everything else is BasicSR's. Called as commands (no ``argv``),
a failed option check prints ``error: ...`` and exits with 2 (:mod:`.fixes.option_checks`); called
with ``argv`` (in-process) it raises.
"""
from __future__ import annotations

import os
import sys
from typing import Callable


def _run(pipeline: Callable[[str], None], argv: list[str] | None) -> None:
    """Run ``pipeline``; without ``argv`` (a command reading ``sys.argv``: ``esc-train``, ``python -m
    esc_basicsr.train``) a user error is one line and exit code 2 (:mod:`.fixes._command`), with ``argv``
    (from Python) an exception."""
    from . import register
    from .fixes._command import set_command

    register()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    else:
        set_command()
    pipeline(os.path.abspath(os.getcwd()))


def train(argv: list[str] | None = None) -> None:
    """BasicSR ``train_pipeline`` with ``argv`` (default ``sys.argv[1:]``): ``-opt X.yml [--auto_resume] ...``."""
    from .basicsr_import import import_basicsr

    import_basicsr()
    from basicsr.train import train_pipeline

    _run(train_pipeline, argv)


def test(argv: list[str] | None = None) -> None:
    """BasicSR ``test_pipeline`` with ``argv`` (default ``sys.argv[1:]``): ``-opt X.yml``."""
    from .basicsr_import import import_basicsr

    import_basicsr()
    from basicsr.test import test_pipeline

    _run(test_pipeline, argv)
