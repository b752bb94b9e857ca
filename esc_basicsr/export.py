"""``python -m esc_basicsr.export``: deployable checkpoint and ONNX model of a trained network.

Folds the training-time re-parameterisations (ESC's geometric ensemble of the shared large
kernel, ELAN's BatchNorm) with :func:`esc_basicsr.archs.deploy.deploy`, then writes

* ``-o FILE.pth``: ``{'params', 'network_g', 'scale', 'deployed': True, 'esc_basicsr_version'}``,
  which ``python -m esc_basicsr.infer --weights FILE.pth`` loads without ``--opt``/``--model``;
* ``--onnx FILE.onnx``: an ONNX graph with dynamic batch, height and width, checked against
  PyTorch with onnxruntime at two input sizes (max abs diff printed; exit code 1 above ``--atol``).

All or nothing: both are written only once the graph passed its check; a failure leaves neither.

Examples::

    python -m esc_basicsr.export --weights ESC_x2.pth -o ESC_x2_deploy.pth --onnx ESC_x2.onnx  # network from weights
    python -m esc_basicsr.export --model esc --scale 2 --weights ESC_x2.pth -o ESC_x2_deploy.pth
    python -m esc_basicsr.export --opt options/test_ELAN_light_x2.yml --weights net_g.pth --onnx elan.onnx

See docs/export.md.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, Sequence

from .tools.cli import output_scale, parse_size, preset_choices, preset_name


def default_sizes(align: int, batch: int) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """Tracing size and two verification sizes, none a multiple of the window grid ``align``.

    Returns ``(trace, [verify1, verify2])`` as ``(B, 3, H, W)``. ``batch`` is 2 for a dynamic batch
    (tracing then records the general path, not one specialised for a single image) and 1 for a
    static one; the first check always uses one image, the second ``batch``.
    """
    trace = (batch, 3, 2 * align + 5, align + 11)
    return trace, [(1, 3, align + 7, 2 * align + 3), (batch, 3, 2 * align + 9, max(align - 5, 5))]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m esc_basicsr.export', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--weights', required=True, help='checkpoint (BasicSR params_ema/params, bare, or deployed)')
    net = p.add_mutually_exclusive_group()
    net.add_argument('--opt', default=None, help='BasicSR option file whose network_g describes the network')
    net.add_argument('--model', default=None, type=preset_name, choices=preset_choices(),
                     help='preset (with --scale)')
    p.add_argument('--scale', type=output_scale, default=None,
                   help='upscaling factor (default: the weights\'; an error if it disagrees with them); for an '
                   'arbitrary-scale network (ESCLTE) required, any factor from 1/32 to 32 (e.g. 2.5): the ONNX '
                   'graph renders at it')
    p.add_argument('--param-key', default=None, help='checkpoint entry with the weights (default params_ema, params)')
    p.add_argument('-o', '--output', default=None, help='write the deployed checkpoint (.pth) here')
    p.add_argument('--onnx', default=None, help='write an ONNX model here')
    p.add_argument('--attn', default='sdpa', choices=['sdpa', 'naive'],
                   help='attention exported for the ESC family (default sdpa; flex has no ONNX form)')
    p.add_argument('--exporter', default='torchscript', choices=['torchscript', 'dynamo'],
                   help='torch.onnx.export with dynamo=False (default, fast) or dynamo=True (torch.export)')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset of the torchscript exporter (default 17)')
    p.add_argument('--static-batch', action='store_true', help='fix the batch dimension to 1')
    p.add_argument('--trace-size', type=parse_size, default=None, metavar='HxW', help='input size used for tracing')
    p.add_argument('--verify-sizes', type=parse_size, nargs='+', default=None, metavar='HxW',
                   help='input sizes checked with onnxruntime (default: two, not multiples of the window)')
    p.add_argument('--no-verify', dest='verify', action='store_false', help='skip the onnxruntime check')
    p.add_argument('--atol', type=_atol, default=2e-3,
                   help='largest accepted |ONNX - PyTorch| on [0, 1] images (default 2e-3, about half an 8-bit level)')
    return p


def _atol(text: str) -> float:
    """``--atol``: a finite number >= 0 (NaN would accept any difference, a negative one none)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}') from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f'must be a finite number >= 0, got {text!r}')
    return value


class UsageError(ValueError):
    """A problem with the arguments or files given (exit code 2)."""


def load_for_export(args: argparse.Namespace) -> Any:
    """Check the arguments and files before anything is built or written; load the network.

    Raises:
        UsageError: with the message to print.
    """
    from .archs.table import network_arbitrary_scale
    from .layers.config import check_environment
    from .tools.loading import load_network
    from .tools.options_check import check_network_g, check_weights_file, load_error_message
    from .utils.options import read_option_file
    from .utils.output_paths import check_distinct_files

    try:
        check_environment()  # ESC_BASICSR_ATTN=bogus: refused before anything is read or written
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.output and not args.onnx:
        raise UsageError('nothing to write: give -o/--output (deployed checkpoint) and/or --onnx')
    try:
        check_distinct_files({'-o': args.output, '--onnx': args.onnx}, {'--weights': args.weights, '--opt': args.opt})
        if args.opt is not None:
            check_network_g(read_option_file(args.opt)['network_g'], f'--opt {args.opt}: network_g')
        check_weights_file(args.weights)
        network = load_network(args.weights, opt=args.opt, preset=args.model, scale=args.scale,
                               attn_type=args.attn, param_key=args.param_key)
    except Exception as exc:  # noqa: BLE001 - a failure before anything is written is a usage error
        known = isinstance(exc, (OSError, ValueError, KeyError, RuntimeError))
        message = load_error_message(args.weights, exc) or (str(exc) if known else f'{type(exc).__name__}: {exc}')
        raise UsageError(message) from exc
    if isinstance(args.scale, float) and not network_arbitrary_scale(network.network_g):
        raise UsageError(f'--scale {args.scale:g} needs an arbitrary-scale network (ESCLTE); '
                         f'{network.network_g["type"]} upscales by x{network.scale}')
    return network


def network_label(network: Any) -> str:
    """``ESC-light x2, type ESC``: the display name ``infer`` prints too (:func:`esc_basicsr.archs.presets.
    display_name`: the preset's, else the architecture's), the scale, and the class where the name differs."""
    from .archs.presets import display_name

    name, kind = display_name(network.network_g), network.network_g['type']
    return f'{name} x{network.scale:g}' + (f', type {kind}' if name != kind else '')


def deployed_bytes(network: Any) -> bytes:
    """The deployed checkpoint of ``network`` serialised in memory, written later with the other outputs
    (``torch.save`` into a full or read-only folder fails with an ``[enforce fail at inline_container.cc]``
    RuntimeError; an ``OSError`` from the write names the reason)."""
    import io

    from .tools.loading import save_deployed

    buffer = io.BytesIO()
    save_deployed(buffer, network.model, network.network_g, network.scale)
    return buffer.getvalue()


def write_deployed(args: argparse.Namespace, data: bytes, network: Any) -> None:
    """The deployed checkpoint, written atomically (folders created). Raises :class:`UsageError`."""
    from .utils.atomic import write_bytes

    try:  # a temporary file next to the target, renamed when complete
        write_bytes(args.output, data)
    except OSError as exc:
        raise UsageError(f'cannot write {args.output}: {exc.strerror or exc}') from exc
    print(f'deployed checkpoint: {args.output} ({network_label(network)})')


class ExportFailed(Exception):
    """The ONNX graph could not be made or verified (exit code 1); nothing is written."""


def write_and_verify_onnx(args: argparse.Namespace, network: Any, deployed: bytes | None) -> int:
    """Export ONNX and compare onnxruntime with PyTorch, then write the outputs; returns the exit code.

    All or nothing: the graph is made and verified under a temporary name, and only then are the deployed
    checkpoint (``deployed``, if asked for) and the graph put in place; a failure leaves neither. The sizes
    avoid multiples of the window grid of the network (the architecture table's input multiple, input
    unshuffling included); an arbitrary-scale network renders at ``network.scale``."""
    from .tools.onnx_export import ExportError, export_onnx, image_to_image, verify_onnx
    from .tools.tiling import tile_alignment
    from .utils.atomic import atomic_path

    model = image_to_image(network.model, network.network_g, network.scale)
    batch = 1 if args.static_batch else 2
    trace, verify = default_sizes(tile_alignment(network.model, network.network_g), batch)
    if args.trace_size:
        trace = (batch, 3, *args.trace_size)
    if args.verify_sizes:
        verify = [(batch if i == len(args.verify_sizes) - 1 else 1, 3, *hw) for i, hw in enumerate(args.verify_sizes)]
    nothing = ' (nothing written)' if args.output else ''
    start = time.perf_counter()
    try:
        with atomic_path(args.onnx) as tmp:
            export_onnx(model, str(tmp), trace, exporter=args.exporter, dynamic_batch=not args.static_batch,
                        opset=args.opset)
            seconds = time.perf_counter() - start
            results = verify_onnx(model, str(tmp), verify) if args.verify else []
            for r in results:
                size, out = 'x'.join(map(str, r['size'])), 'x'.join(map(str, r['output']))
                print(f'onnxruntime vs PyTorch: input {size} -> {out}: max abs diff {r["max_abs_diff"]:.2e}')
            diffs = [r['max_abs_diff'] for r in results]
            worst = next((d for d in diffs if not math.isfinite(d)), max(diffs, default=0.0))
            if not math.isfinite(worst) or worst > args.atol:  # NaN compares False with everything: a failure
                why = f'{worst:.2e} > --atol {args.atol:g}' if math.isfinite(worst) else \
                    f'{worst} (an output holds NaN/inf: nothing was verified)'
                raise ExportFailed(f'ONNX output differs from PyTorch by {why}')
            if deployed is not None:  # before the graph is renamed: a failure here leaves no graph either
                write_deployed(args, deployed, network)
    except OSError as exc:
        print(f'error: cannot write {args.onnx}: {exc.strerror or exc}{nothing}', file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    except (ExportError, ExportFailed) as exc:
        print(f'error: nothing written: {exc}', file=sys.stderr)
        return 1
    dims = 'height, width' if args.static_batch else 'batch, height, width'
    renders = f'renders x{network.scale:g}, ' if model is not network.model else ''  # arbitrary scale
    print(f'ONNX: {args.onnx} ({renders}dynamic {dims}; {args.exporter} exporter, attention {args.attn}, '
          f'{seconds:.1f} s)')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Export; returns the exit code (0 ok, 1 verification above --atol or export failure, 2 bad arguments).
    Nothing is written unless everything asked for succeeds."""
    args = build_parser().parse_args(argv)
    try:
        network = load_for_export(args)
        network.model = network.model.float().cpu()
        deployed = deployed_bytes(network) if args.output else None
        if not args.onnx:
            write_deployed(args, deployed, network)
            return 0
    except UsageError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return write_and_verify_onnx(args, network, deployed)


if __name__ == '__main__':
    sys.exit(main())
