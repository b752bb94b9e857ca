"""Whether the current forward is being traced or exported (TorchScript, ONNX, torch.export/dynamo).

Shape-specialised fast paths (e.g. folding the per-image dynamic kernel into the large kernel when
the batch holds one image) are skipped then, so exported graphs stay general.
"""
from __future__ import annotations

import torch


def is_exporting() -> bool:
    """True while tracing with TorchScript, exporting to ONNX or compiling/exporting with dynamo."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, 'compiler', None)
    if compiler is None:
        return False
    return bool(getattr(compiler, 'is_exporting', lambda: False)() or compiler.is_compiling())
