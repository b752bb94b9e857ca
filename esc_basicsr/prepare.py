"""``python -m esc_basicsr.prepare``: training LMDBs and benchmark folders for BasicSR.

Examples::

    # DIV2K: 480px sub-images, MATLAB-bicubic x2/x3/x4, GT/LQ LMDBs (see docs/data.md)
    python -m esc_basicsr.prepare div2k --hr DIV2K_train_HR --out datasets/DIV2K --name DIV2K_train \\
        --scales 2 3 4 --workers 8
    # DF2K = DIV2K + Flickr2K
    python -m esc_basicsr.prepare div2k --hr DIV2K_train_HR Flickr2K_HR --out datasets/DF2K --name DF2K_train
    # a benchmark set from its HR images: GTmod12/ and LRbicx{2,3,4}/
    python -m esc_basicsr.prepare benchmark --hr Set5_HR --out datasets/Set5 --scales 2 3 4

Re-running skips whatever is complete. Images that cannot be used (unreadable, too small,
clashing names) are skipped and listed at the end, and the exit code is 1; 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import os
import sys

from .data_prep import prepare_benchmark, prepare_paired_lmdb
from .tools.cli import non_negative_int, parse_scale, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m esc_basicsr.prepare', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--hr', nargs='+', required=True, help='folder(s) of HR images')
    common.add_argument('--out', required=True, help='output folder, e.g. datasets/DIV2K')
    common.add_argument('--scales', nargs='+', type=parse_scale, default=[2, 3, 4],
                        help='downscaling factors (2 3 4); benchmark: also non-integer, e.g. 2.5 6 8 30')
    common.add_argument('--workers', type=positive_int, default=min(8, os.cpu_count() or 1), help='processes')
    common.add_argument('--mod', type=positive_int, default=12, help='crop HR to a multiple of this (12)')
    common.add_argument('--max-pixels', type=positive_int, default=None,
                        help='skip HR images with more pixels than this (header read before decoding; '
                        'default 2**28)')

    div2k = sub.add_parser('div2k', parents=[common], help='sub-images + GT/LQ LMDBs (training data)')
    div2k.add_argument('--name', required=True, help='prefix, e.g. DIV2K_train or DF2K_train')
    div2k.add_argument('--crop-size', type=positive_int, default=480, help='HR sub-image size (480)')
    div2k.add_argument('--step', type=positive_int, default=240, help='HR sub-image stride (240)')
    div2k.add_argument('--thresh-size', type=non_negative_int, default=0, help='add a border crop if more is left (0)')
    sub.add_parser('benchmark', parents=[common], help='GTmod12 + LRbicx{s} folders (test sets)')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code (0 ok, 1 some images skipped, 2 bad arguments)."""
    args = build_parser().parse_args(argv)
    limit = {} if args.max_pixels is None else {'max_pixels': args.max_pixels}
    try:
        if args.command == 'div2k':
            if not all(isinstance(s, int) for s in args.scales):
                raise ValueError(f'div2k --scales must be integers, got {args.scales} (arbitrary-scale '
                                 'training reads only the HR LMDB; non-integer LR folders: benchmark)')
            report = prepare_paired_lmdb(args.hr, args.out, args.name, args.scales, workers=args.workers,
                                         crop_size=args.crop_size, step=args.step, thresh_size=args.thresh_size,
                                         mod=args.mod, **limit)
        else:
            report = prepare_benchmark(args.hr, args.out, args.scales, workers=args.workers, mod=args.mod, **limit)
    except (ValueError, FileNotFoundError) as exc:  # bad arguments, a missing --hr, an --out that cannot be written
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(report.summary(), file=sys.stderr if report.exit_code else sys.stdout, flush=True)
    return report.exit_code


if __name__ == '__main__':
    sys.exit(main())
