"""``python -m benchmarks.gpu_speed`` (from the repository root): see :mod:`benchmarks.gpu_speed.run`."""
import sys

from .run import main

sys.exit(main())
