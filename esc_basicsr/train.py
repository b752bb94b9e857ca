"""``python -m esc_basicsr.train -opt X.yml [--auto_resume] [--launcher pytorch]`` (also ``esc-train``).

BasicSR's own ``train_pipeline`` with ``experiments/`` and ``tb_logger/`` under the current
directory (see :mod:`esc_basicsr.integration.pipelines`). All BasicSR arguments are accepted.
"""
from __future__ import annotations

from .integration.pipelines import train as main

if __name__ == '__main__':
    main()
