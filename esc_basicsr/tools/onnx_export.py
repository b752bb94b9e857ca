"""ONNX export with dynamic batch, height and width, verified with onnxruntime.

What makes ESC/ELAN hard to export with dynamic sizes, and how the layers handle it themselves
while :func:`esc_basicsr.layers.export_state.is_exporting` is true (weights and eager numerics
untouched):

* The window attention reflect-pads to a multiple of the window with
  :func:`esc_basicsr.layers.padding.pad_to_multiple`, which branches in Python on the size (no
  pad / one ``F.pad`` / repeated reflection for inputs smaller than the pad). A trace records
  one branch; ONNX ``Pad(reflect)`` also rejects pads larger than the input. While exporting it
  gathers the same reflected pixels with an index vector built from ``arange``
  (:func:`esc_basicsr.layers.padding.reflect_pad_to_multiple`: no branch, any size down to 1x1).
* ESC's dynamic 3x3 depthwise convolution is one convolution with ``groups = B * C`` (fast on
  CPU), which fixes the batch in the graph; while exporting it is a sum of 9 shifted products
  (:func:`esc_basicsr.layers.conv_attn.dynamic_depthwise_conv_any_batch`).
* The naive attention splits the windows into chunks in a Python loop; while exporting one chunk
  covers any image.

An arbitrary-scale network (ESC-LTE: the output size is an argument of ``upscale``) is exported at one scale
(:func:`image_to_image`): its :class:`~esc_basicsr.layers.lte.FixedScale` view, which while exporting renders
every output pixel in one pass (``LTE.render``: the output size from the input's with tensor operations,
no Python loops over chunks and tiles).

Exporters (``torch.onnx.export``): the TorchScript tracer (``dynamo=False``, ``dynamic_axes``;
deprecated by PyTorch but ~20x faster here: 14 s vs 280 s for ESC x2) and the ``torch.export``
one (``dynamo=True``, ``dynamic_shapes``). Both give dynamic batch/height/width graphs with the
substitutions above; without them, both fail for inputs smaller than half a window. FlexAttention
has no ONNX lowering: export with ``attn_type`` ``sdpa`` or ``naive``.
"""
from __future__ import annotations

import contextlib
import copy
import sys
import warnings
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..archs.table import network_arbitrary_scale
from ..layers.lte import FixedScale

EXPORTABLE_BACKENDS = ('naive', 'sdpa')
EXPORTERS = ('torchscript', 'dynamo')


class ExportError(RuntimeError):
    """The model cannot be exported as requested (the message says why and what to do)."""


@contextlib.contextmanager
def cleared_tensor_caches() -> Iterator[None]:
    """Empty the ``functools`` caches of esc_basicsr's modules (e.g. the relative-position index)
    when the block exits.

    ``torch.export`` runs the model on fake tensors: a cache filled during the export would hand
    those to later eager calls (``.numpy() is not supported for tensor subclasses``).
    """
    try:
        yield
    finally:
        for name, module in list(sys.modules.items()):
            if module is None or not name.startswith('esc_basicsr.'):
                continue
            for value in list(vars(module).values()):
                if callable(getattr(value, 'cache_clear', None)) and callable(getattr(value, 'cache_info', None)):
                    value.cache_clear()


def image_to_image(model: nn.Module, network_g: Mapping[str, Any], scale: float) -> nn.Module:
    """The module an ONNX graph of ``model`` (described by ``network_g``, with ``type``) is traced from,
    ``(B, 3, H, W) -> (B, 3, H', W')``: ``model`` itself, or for an arbitrary-scale network (the table's
    row of its type) its :class:`~esc_basicsr.layers.lte.FixedScale` view at ``scale``: output
    ``(round(scale*H), round(scale*W))``, the same weights."""
    return FixedScale(model, scale).eval() if network_arbitrary_scale(network_g) else model


def check_exportable(model: nn.Module) -> None:
    """Raise :class:`ExportError` unless every attention backend of ``model`` is exportable."""
    for name, module in model.named_modules():
        attn_type = getattr(module, 'attn_type', None)
        if attn_type is None:
            continue
        if attn_type == 'flex':
            raise ExportError(f'{name}: attn_type="flex" (FlexAttention) has no ONNX lowering; '
                              'export with attn_type "sdpa" (--attn sdpa) or "naive"')
        if attn_type not in EXPORTABLE_BACKENDS:
            raise ExportError(f'{name}: attn_type={attn_type!r}: choose the exported attention explicitly, '
                              '"sdpa" or "naive" (--attn)')


def export_onnx(model: nn.Module, path: str, example_size: Sequence[int], exporter: str = 'torchscript',
                dynamic_batch: bool = True, opset: int = 17) -> None:
    """Export ``model`` (eval, float32, CPU) to ``path`` with dynamic height and width.

    Args:
        model: the (deployed) network, ``(B, 3, H, W) -> (B, 3, rH, rW)``.
        path: output ``.onnx`` file.
        example_size: ``(B, C, H, W)`` of the tracing input; use H, W that are not multiples of
            the window, and B = 2 for a dynamic batch, so that no branch taken only for one
            image or for whole windows is recorded.
        exporter: ``'torchscript'`` (``dynamo=False``) or ``'dynamo'`` (``torch.export``).
        dynamic_batch: make the batch dimension dynamic too.
        opset: ONNX opset of the TorchScript exporter (the dynamo one picks its own, >= 18).

    Raises:
        ExportError: unexportable attention, missing ONNX packages, or a failed export.
        OSError: the file cannot be written (full disk, read-only folder).
    """
    if exporter not in EXPORTERS:
        raise ExportError(f'exporter must be one of {EXPORTERS}, got {exporter!r}')
    if exporter == 'dynamo' and isinstance(model, FixedScale):
        raise ExportError('an arbitrary-scale network computes its output size, round(scale * H), with Python\'s '
                          'round(), which the dynamo exporter does not convert to ONNX (PyTorch 2.14: "No ONNX '
                          'function found for round"): use --exporter torchscript (the default)')
    check_exportable(model)
    try:
        import onnx  # noqa: F401
        if exporter == 'dynamo':
            import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(f'ONNX export needs the "{exc.name}" package: pip install "esc_basicsr[onnx]"') from exc
    model = model.eval()
    x = torch.rand(*example_size)
    dims = ([0] if dynamic_batch else []) + [2, 3]
    with cleared_tensor_caches(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TracerWarnings about branches that is_exporting() made irrelevant
        try:
            if exporter == 'torchscript':
                names = {0: 'batch', 2: 'height', 3: 'width'}
                out_names = {0: 'batch', 2: 'out_height', 3: 'out_width'}
                torch.onnx.export(model, (x,), path, dynamo=False, opset_version=opset, input_names=['input'],
                                  output_names=['output'],
                                  dynamic_axes={'input': {d: names[d] for d in dims},
                                                'output': {d: out_names[d] for d in dims}})
            else:
                dim = torch.export.Dim.DYNAMIC
                # export a copy: torch.export leaves traces on the module it exports
                torch.onnx.export(copy.deepcopy(model), (x,), path, dynamo=True, input_names=['input'],
                                  output_names=['output'], dynamic_shapes=({d: dim for d in dims},),
                                  external_data=False, verbose=False)  # one self-contained file
        except (ExportError, OSError):  # an OSError is the file's (full disk, read-only folder), not the graph's
            raise
        except Exception as exc:
            other = 'dynamo' if exporter == 'torchscript' else 'torchscript'
            message = next((line for line in str(exc).splitlines() if line.strip()), '')[:500]
            raise ExportError(f'the {exporter} ONNX exporter failed for {type(model).__name__}: '
                              f'{type(exc).__name__}: {message}\n'
                              f'Try --exporter {other}, --attn naive, or --static-batch.') from exc


def verify_onnx(model: nn.Module, path: str, sizes: Sequence[Sequence[int]], seed: int = 0) -> list[dict]:
    """Compare the ONNX graph (onnxruntime, CPU) with ``model`` (PyTorch) on random inputs.

    Args:
        model: the PyTorch model that was exported (eval, float32, CPU).
        path: the ``.onnx`` file.
        sizes: input sizes ``(B, C, H, W)`` to test.

    Returns:
        One ``{'size': (B, C, H, W), 'output': (B, C, rH, rW), 'max_abs_diff': float}`` per size.

    Raises:
        ExportError: onnxruntime is missing, rejects the graph, or gives another output shape.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError('verification needs onnxruntime: pip install "esc_basicsr[onnx]"') from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    generator = torch.Generator().manual_seed(seed)
    results = []
    for size in sizes:
        x = torch.rand(*size, generator=generator)
        with torch.no_grad():
            ref = model(x).float().numpy()
        try:
            out = session.run(None, {input_name: x.numpy()})[0]
        except Exception as exc:
            raise ExportError(f'onnxruntime failed on an input of size {tuple(size)}: {exc}') from exc
        if out.shape != ref.shape:
            raise ExportError(f'ONNX output {out.shape} != PyTorch output {ref.shape} for input {tuple(size)}: '
                              'the graph is not valid for this size')
        results.append({'size': tuple(size), 'output': tuple(out.shape),
                        'max_abs_diff': float(np.abs(out - ref).max())})
    return results
