"""``python -m esc_basicsr.infer``: upscale images with a trained ESC/ELAN (or any BasicSR) network.

Examples::

    python -m esc_basicsr.infer -i photos/ -o results/ --weights ESC_x2.pth   # network read off the weights
    python -m esc_basicsr.infer -i photos/ -o results/ --model esc --scale 2 --weights ESC_x2.pth
    python -m esc_basicsr.infer -i 'frames/*.png' -o out/ --opt options/test_ESC_x2.yml \\
        --weights net_g_latest.pth --tile 256 --batch-size 4 --fp16
    python -m esc_basicsr.infer -i big.png -o out/ --weights esc_x2_deployed.pth   # from export

The network is read off the weights (every esc_basicsr architecture, any size), or described by
``--opt`` (a BasicSR option file's ``network_g``), a preset (``--model``, ``--scale``), or the
description stored in a checkpoint written by ``python -m esc_basicsr.export``; a ``--scale`` (or
option file) that disagrees with the weights' scale is an error (exit code 2). Outputs keep the
input's layout (RGB, grey, RGBA, grey+alpha; 8/16-bit, as far as the output format can hold it)
and relative name. Inputs (and the ``--compare`` ground truths) are never overwritten, no two inputs
share an output name, and files appear only when complete. Unreadable inputs, animated images
(refused: extract their frames first), images that would not fit in the memory (estimated from the
header before decoding) and images the network turns into NaN/inf are reported and skipped, and the
others still written; the exit code is 1 if any failed. FIFOs and other non-regular files among the
inputs are skipped with a message. Ctrl-C abandons the current batch and lists what was written (each
file complete), exit code 130. See docs/inference.md.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .tools.memory_check import memory_problem
from .tools.upscaler import Upscaler, process_batch


def build_parser() -> argparse.ArgumentParser:
    from .tools.cli import PRECISION_CHOICES, attn_choices, output_scale, preset_choices, preset_name
    from .tools.speed_settings import add_arguments as add_speed_arguments

    p = argparse.ArgumentParser(prog='python -m esc_basicsr.infer', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('-i', '--input', required=True, help='image file, folder (searched recursively) or glob')
    p.add_argument('-o', '--output', required=True, help='output folder')
    p.add_argument('--weights', required=True, help='checkpoint: BasicSR (params_ema, else params), bare '
                   'state_dict, or deployed (python -m esc_basicsr.export)')
    net = p.add_mutually_exclusive_group()
    net.add_argument('--opt', default=None, help='BasicSR option file whose network_g describes the network')
    net.add_argument('--model', default=None, type=preset_name, choices=preset_choices(),
                     help='preset (with --scale)')
    p.add_argument('--scale', type=output_scale, default=None, help='upscaling factor (default: the weights\'; an '
                   'error if it disagrees with them); any factor > 0 '
                   '(e.g. 2.5) for an arbitrary-scale network (ESCLTE): output round(s*h) x round(s*w)')
    p.add_argument('--param-key', default=None, help='checkpoint entry with the weights (default params_ema, params)')
    p.add_argument('--attn', default=None, choices=attn_choices(),
                   help='attention backend of the ESC family (default: as described, i.e. auto)')
    p.add_argument('--suffix', default='', help='added to output file names, e.g. _x2')
    p.add_argument('--ext', default=None, help='output format, e.g. png (default: same as the input)')
    p.add_argument('--tile', type=int, default=0, help='tile size in input pixels (0: whole image); rounded up '
                   'to a multiple of the attention window')
    p.add_argument('--tile-pad', type=int, default=32, help='context around each tile in input pixels (default 32)')
    p.add_argument('--batch-size', type=int, default=1, help='images of the same size run together (default 1)')
    p.add_argument('--alpha', default='bicubic', choices=['bicubic', 'model', 'drop'],
                   help='how an alpha channel is upscaled (default bicubic); drop: discard it (needed for '
                   'outputs in a format without alpha, e.g. --ext jpg)')
    p.add_argument('--max-pixels', type=int, default=None,
                   help='refuse inputs with more pixels than this, read from the header before decoding '
                   '(default 2**28 = 268M)')
    p.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto (default)')
    p.add_argument('--precision', default='fp32', choices=PRECISION_CHOICES)
    p.add_argument('--fp16', dest='precision', action='store_const', const='fp16', help='= --precision fp16 (CUDA)')
    p.add_argument('--bf16', dest='precision', action='store_const', const='bf16', help='= --precision bf16')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.add_argument('--compare', metavar='GT_DIR', default=None,
                   help='ground truths named like the inputs: PSNR of the outputs and of bicubic per image, and '
                   'a side-by-side figure (input, bicubic, model, GT) written to the output folder')
    add_speed_arguments(p)
    p.add_argument('--compile-backend', default=None, help=argparse.SUPPRESS)  # tests on a CPU: aot_eager
    return p


@dataclass
class Run:
    """Everything decided before the first image is read (see :func:`prepare_run`)."""

    plan: list  # (input path, output path)
    upscaler: Upscaler
    network: Any
    max_pixels: int
    skipped: list = field(default_factory=list)  # (path, why): non-regular files and second names of one file
    notes: list = field(default_factory=list)  # what the speed settings did (e.g. the low-rank bias's ranks)


@dataclass
class Progress:
    """What :func:`upscale_all` has done so far (kept up to date, so an interruption can be summed up)."""

    written: int = 0
    failed: list = field(default_factory=list)  # (input, why it failed)
    notes: dict = field(default_factory=dict)  # note -> count


def prepare_run(args: argparse.Namespace) -> Run:
    """Check everything that can be checked before the first image (paths, names, output format,
    network, weights, writability) and load the network. Raises on any usage error."""
    from .archs import PRESETS, arch_spec
    from .archs.table import network_arbitrary_scale
    from .tools.infer_compare import check_gt_dir, check_gt_untouched
    from .tools.loading import load_network
    from .tools.options_check import check_network_g, check_weights_file
    from .tools.runtime import resolve_device, resolve_dtype
    from .layers.config import check_environment
    from .tools.speed_settings import SpeedSettings
    from .utils.atomic import check_writable
    from .utils.image_io import DEFAULT_MAX_PIXELS, output_format
    from .utils.options import read_option_file
    from .utils.output_paths import list_inputs, plan_outputs

    check_environment()  # ESC_BASICSR_ATTN=bogus: one refusal here, not a failure per image
    if args.batch_size < 1 or args.tile < 0 or args.tile_pad < 0 or (args.max_pixels is not None
                                                                      and args.max_pixels < 1):
        raise ValueError('--batch-size and --max-pixels must be >= 1, --tile and --tile-pad >= 0')
    if args.ext is not None:
        output_format(args.ext)
    if args.compare is not None:
        check_gt_dir(args.compare)
    skipped: list = []
    inputs = list_inputs(args.input, exclude=[args.output] + ([args.compare] if args.compare else []),
                         skipped=skipped)
    if not inputs:
        raise ValueError(f'no images found in {args.input!r}' + (f' ({len(skipped)} skipped: {skipped[0][0]}: '
                                                                 f'{skipped[0][1]})' if skipped else ''))
    plan = plan_outputs(inputs, args.output, args.suffix, args.ext, input_spec=args.input)
    if args.compare is not None:
        check_gt_untouched(plan, args.compare, args.output)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.precision, device)
    settings = SpeedSettings.from_args(args)
    settings.check(device)
    if args.opt is not None:
        check_network_g(read_option_file(args.opt)['network_g'], f'--opt {args.opt}: network_g')
    check_weights_file(args.weights)
    if isinstance(args.scale, float) and args.model is not None and arch_spec(PRESETS[args.model]['type']).scale_arg:
        raise ValueError(f'--scale {args.scale:g} needs an arbitrary-scale network (ESCLTE, with --opt); '
                         f'the preset {args.model!r} upscales by an integer')
    network = load_network(args.weights, opt=args.opt, preset=args.model, scale=args.scale,
                           attn_type=args.attn, param_key=args.param_key)
    if isinstance(args.scale, float) and not network_arbitrary_scale(network.network_g):
        raise ValueError(f'--scale {args.scale:g} needs an arbitrary-scale network (ESCLTE); '
                         f'{type(network.model).__name__} upscales by x{network.scale}')
    settings.apply_environment()
    notes = settings.prepare(network.model)  # may refuse (--low-rank-bias 0: no float32 factors that exact)
    upscaler = Upscaler(network, device, dtype, args.tile, args.tile_pad, settings)
    try:  # last, so that a refused run creates no folder (check_writable makes it)
        check_writable(args.output)
    except OSError as exc:
        raise ValueError(f'-o {args.output}: cannot write there ({exc.strerror or exc})') from None
    return Run(plan, upscaler, network, args.max_pixels or DEFAULT_MAX_PIXELS, skipped, notes)


def network_line(run: Run, args: argparse.Namespace) -> str:
    """``network: ESC-light x2 (ESC, read off the weights), cpu, fp32``: what runs, printed before the first image."""
    from .archs.presets import display_name
    from .archs.table import ARCHITECTURES

    network_g = run.network.network_g
    if args.opt is not None:
        source = f'from --opt {args.opt}'
    elif args.model is not None:
        source = f'preset --model {args.model}'
    elif isinstance(run.network.meta.get('network_g'), dict):
        source = 'described by the checkpoint'
    else:
        source = 'read off the weights'
    spec = ARCHITECTURES.get(network_g['type'])
    any_scale = ', any scale' if spec is not None and spec.arbitrary_scale else ''
    return (f'network: {display_name(network_g)} x{run.upscaler.scale:g} ({network_g["type"]}{any_scale}, {source}), '
            f'{run.upscaler.device}, {args.precision}')


def upscale_all(run: Run, args: argparse.Namespace,
                progress: Progress | None = None) -> tuple[int, list[tuple[Path, str]], dict[str, int]]:
    """Read, upscale (same-size images in batches) and write every planned image; one failure never
    stops the others. Returns (images written, [(input, why it failed)], {note: count}), also kept in
    ``progress`` as the run goes (for a summary after Ctrl-C)."""
    from tqdm import tqdm

    from .utils import image_io
    from .utils.image_io import ImageReadError, ImageWriteError, plan_output

    progress = Progress() if progress is None else progress
    notes, failed = progress.notes, progress.failed
    bar = tqdm(total=len(run.plan), unit='img', disable=args.quiet, file=sys.stderr)

    def fail(src: Path, why: str, verb: str = 'failed') -> None:
        failed.append((src, why))
        tqdm.write(f'{verb}: {src}: {why}', file=sys.stderr)

    def flush(batch: list) -> None:
        if not batch:
            return
        try:
            errors = process_batch(run.upscaler, [(img, out, how) for _, img, out, how in batch], args.alpha)
        except MemoryError:
            errors = [MemoryError('not enough memory to upscale it; use --tile (e.g. 512) or a smaller image')] * \
                len(batch)
        except Exception as exc:  # noqa: BLE001 - e.g. out of GPU memory: report these images, go on with the others
            errors = [exc] * len(batch)
        for (src, *_), exc in zip(batch, errors):
            if exc is None:
                progress.written += 1
            else:
                fail(src, f'{type(exc).__name__}: {exc}')
        bar.update(len(batch))
        batch.clear()

    try:
        batch: list = []
        for src, out in run.plan:
            try:
                problem = memory_problem(src, run.upscaler.scale, args.tile, args.tile_pad,
                                         on_cpu=run.upscaler.device.type == 'cpu')
                if problem is not None:
                    raise ImageReadError(problem)
                img = image_io.read_image(src, run.max_pixels)
                how = plan_output(img.layout, img.dtype, out.suffix, drop_alpha=args.alpha == 'drop')
            except (ImageReadError, ImageWriteError, ValueError) as exc:
                fail(src, str(exc), 'skipped')
                bar.update(1)
                continue
            except MemoryError:
                fail(src, 'not enough memory to read and convert it (MemoryError); use a smaller image or more '
                     'memory', 'skipped')
                bar.update(1)
                continue
            if how.note:
                notes[how.note] = notes.get(how.note, 0) + 1
            if batch and (len(batch) == args.batch_size or batch[0][1].rgb.shape != img.rgb.shape):
                flush(batch)
            batch.append((src, img, out, how))
        flush(batch)
    finally:
        bar.close()
    return progress.written, failed, notes


def main(argv: Sequence[str] | None = None) -> int:
    """Run inference; returns the exit code (0: all written, 1: some failed, 2: bad arguments)."""
    from .archs.presets import display_name
    from .tools.infer_compare import compare_outputs
    from .tools.options_check import load_error_message

    args = build_parser().parse_args(argv)
    try:
        run = prepare_run(args)
    except KeyboardInterrupt:
        print('interrupted before the first image: nothing written', file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - any failure before the first image is a usage error
        known = isinstance(exc, (OSError, ValueError, KeyError, RuntimeError))
        message = load_error_message(args.weights, exc) or (str(exc) if known else f'{type(exc).__name__}: {exc}')
        print(f'error: {message}', file=sys.stderr)
        return 2
    for src, why in run.skipped:
        print(f'skipped: {src}: {why}', file=sys.stderr)
    print(network_line(run, args), file=sys.stderr, flush=True)
    for note in run.notes:
        print(f'note: {note}', file=sys.stderr)
    progress = Progress()
    try:
        written, failed, notes = upscale_all(run, args, progress)
    except KeyboardInterrupt:  # Ctrl-C: what was written is complete (atomic writes); say what it is
        left = len(run.plan) - progress.written - len(progress.failed)
        print(f'\ninterrupted: {progress.written} image(s) written to {args.output}, {left} not processed'
              + (f', {len(progress.failed)} failed:' if progress.failed else ''), file=sys.stderr)
        for src, why in progress.failed:
            print(f'  {src}: {why}', file=sys.stderr)
        return 130
    for note, n in notes.items():
        print(f'note: {n} image(s): {note}', file=sys.stderr)
    print(f'{written} image(s) written to {args.output}' + (f', {len(failed)} failed:' if failed else ''),
          file=sys.stderr)
    for src, why in failed:
        print(f'  {src}: {why}', file=sys.stderr)
    if args.compare is not None:
        bad = {src for src, _ in failed}
        try:
            compare_outputs([(s, o) for s, o in run.plan if s not in bad], args.compare, run.upscaler.scale,
                            args.output, model_label=display_name(run.network.network_g))
        except KeyboardInterrupt:
            print('interrupted during --compare (the images are written)', file=sys.stderr)
            return 130
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
