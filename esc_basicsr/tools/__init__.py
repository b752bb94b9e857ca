"""Machinery of the command-line tools (``esc_basicsr.infer``, ``.export``, ``.benchmark``).

* :mod:`.loading`: network description (option file, preset, deployed checkpoint) -> model.
* :mod:`.image_io`: input discovery and image layouts (RGB, gray, RGBA; 8/16-bit).
* :mod:`.tiling`: tiled forward pass with overlap, aligned to the model's windows.
* :mod:`.onnx_export`: ONNX export with dynamic sizes and onnxruntime verification.
* :mod:`.profiling`: parameters, multiply-accumulates, latency and peak memory.

Nothing here is imported by ``import esc_basicsr``; the tools import what they need.
"""
