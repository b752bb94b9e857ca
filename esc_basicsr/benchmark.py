"""``python -m esc_basicsr.benchmark``: the paper's efficiency table (ESC Section 4.2 style).

Parameters, multiply-accumulates (PyTorch's ``FlopCounterMode``, MACs = FLOPs / 2), latency
(median after warm-up) and the memory added by a forward pass, for ESC, ESC-light, ESC-FP,
ELAN-light and BasicSR's SwinIR-light (plus any BasicSR architecture named with
``--basicsr-arch``), at a 1280x720 output by default, on CPU or CUDA. Each model is measured in a
fresh Python process (``--no-isolate`` to disable) so that memory readings do not mix.

Examples::

    python -m esc_basicsr.benchmark --device cuda                       # paper setting, x2, 1280x720
    python -m esc_basicsr.benchmark --device cpu --threads 2 --lr-size 176x320 --scale 2 \\
        --models esc swinir_light --baseline swinir_light
    python -m esc_basicsr.benchmark --models esc --backends naive sdpa flex --json out.json
    python -m esc_basicsr.benchmark --no-timing                         # parameters and MACs only
    python -m esc_basicsr.benchmark --weights ESC_x2.pth my_realm.pth    # networks read off checkpoints
    python -m esc_basicsr.benchmark --train --device cpu --threads 2 --batch-size 8 \\
        --models esc_light swinir_light --baseline swinir_light           # one training iteration
    python -m esc_basicsr.benchmark --device cuda --models esc --bf16 --autocast --tf32 on --compile
    python -m esc_basicsr.benchmark --device cuda --models esc --bf16 --low-rank-bias rank:16

The speed settings (``--compile``, ``--cuda-graphs``, ``--channels-last``, ``--low-rank-bias``,
``--flex-kernel-options``: :mod:`esc_basicsr.tools.speed_settings`) apply to every row; none has been measured
on a GPU yet. ``scripts/gpu_speed.sh`` measures them all against issue 21's goals in one run.

See docs/benchmark.md for the definitions. The machinery: :mod:`esc_basicsr.tools.benchmark_plan` (the rows and
their run), :mod:`.benchmark_worker` (one row) and :mod:`.benchmark_report` (table and files).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .layers.config import check_environment
from .tools.benchmark_plan import DEFAULT_MODELS, make_plan, run_plan
from .tools.benchmark_report import report
from .tools.benchmark_worker import main as worker_main
from .tools.cli import (PRECISION_CHOICES, attn_choices, integer_scale, non_negative_int, parse_size, positive_int,
                        positive_seconds, preset_choices)
from .tools.speed_settings import add_arguments as add_speed_arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m esc_basicsr.benchmark', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='*', default=None,
                   help=f'presets ({", ".join(preset_choices())}) and/or swinir_light '
                        f'(default: {" ".join(DEFAULT_MODELS)}, none with --weights)')
    p.add_argument('--weights', nargs='+', default=[], metavar='CKPT',
                   help='checkpoints whose networks are measured, each read off its weights (one scale for all)')
    p.add_argument('--basicsr-arch', action='append', default=[], metavar='TYPE[:JSON]',
                   help='another registered architecture, e.g. \'EDSR:{"num_feat": 64, "num_block": 16}\' '
                        '(scale and RGB channel arguments are filled in); repeatable')
    p.add_argument('--backends', nargs='+', default=['auto'], choices=attn_choices(),
                   help='attention backends of the ESC family, one row each (default: auto)')
    p.add_argument('--scale', type=integer_scale, default=None,
                   help='upscaling factor, 1 to 32 (default: that of --weights, else 2; an error if it disagrees with '
                        'them)')
    size = p.add_mutually_exclusive_group()
    size.add_argument('--output-size', type=parse_size, default=(720, 1280), metavar='HxW',
                      help='output size, height x width like every size of the tools (default 720x1280, the '
                           'paper\'s 1280x720 frame); the input is this / scale')
    size.add_argument('--lr-size', type=parse_size, default=None, metavar='HxW', help='input size, height x width')
    p.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto (default)')
    p.add_argument('--precision', default='fp32', choices=PRECISION_CHOICES)
    p.add_argument('--fp16', dest='precision', action='store_const', const='fp16', help='= --precision fp16')
    p.add_argument('--bf16', dest='precision', action='store_const', const='bf16', help='= --precision bf16')
    p.add_argument('--autocast', action='store_true',
                   help='bf16/fp16 inference under autocast with float32 weights (default: network and input cast)')
    p.add_argument('--tf32', default='default', choices=('default', 'on', 'off'),
                   help='CUDA TF32: on (matmuls and cuDNN convolutions), off (strict fp32) or PyTorch\'s default '
                        '(convolutions on, matmuls off)')
    p.add_argument('--threads', type=positive_int, default=None, help='CPU threads (torch.set_num_threads)')
    p.add_argument('--warmup', type=non_negative_int, default=None, help='untimed passes (default: CPU 1, CUDA 5)')
    p.add_argument('--repeats', type=positive_int, default=None,
                   help='timed passes, median reported (default: CPU 3, CUDA 20)')
    p.add_argument('--baseline', default=None, help='label of the row that ratios are relative to, e.g. swinir_light')
    p.add_argument('--no-timing', dest='timing', action='store_false', help='parameters and MACs only')
    p.add_argument('--no-macs', dest='macs', action='store_false', help='skip the MAC count')
    p.add_argument('--no-isolate', dest='isolate', action='store_false',
                   help='measure in this process (CPU memory readings then include earlier models)')
    p.add_argument('--rounds', type=positive_int, default=1,
                   help='repeat the isolated runs of all models round-robin N times and report each model\'s '
                        'median: on a shared machine a change of load then hits every model alike (default 1)')
    p.add_argument('--timeout', type=positive_seconds, default=None, help='seconds per model (isolated runs)')
    p.add_argument('--csv', default=None, help='write the results as CSV (never over a --weights file)')
    p.add_argument('--json', default=None, help='write the configuration and results as JSON (never over a --weights '
                                                'file)')
    p.add_argument('--plot', default=None, help='write a PNG of latency vs parameters')
    train = p.add_argument_group('training step (--train)')
    train.add_argument('--train', action='store_true',
                       help='time one training iteration (forward, L1 loss, backward, AdamW step) instead of '
                            'inference; bf16/fp16 run under autocast with float32 weights')
    train.add_argument('--batch-size', type=positive_int, default=None,
                       help='training batch (default: the recipe\'s 64 on CUDA, 8 on the CPU)')
    train.add_argument('--patch', type=positive_int, default=64,
                       help='LR patch size (default 64: the recipe\'s GT 128 at x2)')
    add_speed_arguments(p)
    p.add_argument('--compile-backend', default=None, help=argparse.SUPPRESS)  # tests on a CPU: aot_eager
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (0 ok, 1 a model failed, 2 bad arguments)."""
    args = build_parser().parse_args(argv)
    if args.worker is not None:  # one row in this process (isolated rows run tools.benchmark_worker)
        return worker_main([args.worker])
    try:
        check_environment()  # ESC_BASICSR_ATTN=bogus: one refusal, not a failed row per model
        plan = make_plan(args)
    except (ValueError, KeyError, OSError, RecursionError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError's str() quotes it
        print(f'error: {message}', file=sys.stderr)
        return 2
    rows = run_plan(plan, args)
    try:
        report(plan, rows, args)
    except OSError as exc:  # the folder was checked: it changed during the run (full disk, removed)
        print(f'error: cannot write the results: {exc.strerror or exc} ({exc.filename or ""})', file=sys.stderr)
        return 1
    return 1 if any(r.get('error') for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
