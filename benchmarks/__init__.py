"""The project's own measurement scripts (not part of the installed package ``esc_basicsr``).

Run from the repository root, e.g. ``python -m benchmarks.gpu_speed --plan``; the GPU scripts
(``scripts/gpu_check.sh``, ``scripts/gpu_speed.sh``) run them through :mod:`benchmarks.timebox`.
What users run is ``python -m esc_basicsr.benchmark``.
"""
