"""Machinery of the command-line tools (``esc_basicsr.infer``, ``.export``, ``.benchmark``).

* :mod:`.loading`: network description (option file, preset, deployed checkpoint) -> model.
* :mod:`.tiling`: tiled forward pass with overlap, aligned to the model's windows.
* :mod:`.onnx_export`: ONNX export with dynamic sizes and onnxruntime verification.
* :mod:`.profiling`: parameters, multiply-accumulates, latency and peak memory.

Nothing here is imported by ``import esc_basicsr``; the tools import what they need. Helpers that
data preparation or the BasicSR integration use too (image I/O, atomic writes, output paths) are
one floor lower, in :mod:`esc_basicsr.utils`.
"""
