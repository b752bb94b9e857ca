"""``python -m esc_basicsr.test -opt X.yml`` (also ``esc-test``).

BasicSR's own ``test_pipeline`` with ``results/`` under the current directory (see
:mod:`esc_basicsr.integration.pipelines`).
"""
from __future__ import annotations

from .integration.pipelines import test as main

if __name__ == '__main__':
    main()
