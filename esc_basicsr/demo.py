"""``python -m esc_basicsr.demo --workdir demo_workdir``: the whole BasicSR workflow in minutes, offline.

1. writes scikit-image's bundled photographs (no download) to ``photos/train`` and ``photos/test``;
2. ``python -m esc_basicsr.prepare``: a DIV2K-like x2 LMDB from the training photos and a
   benchmark-style test set (``GTmod12``/``LRbicx2``) from the held-out ones;
3. plans 400 iterations (fewer where one training step is too slow for 11 minutes, see ``--minutes``);
4. ``python -m esc_basicsr.train`` (BasicSR's ``SRModel``) from the packaged option file
   ``esc_basicsr/options/demo_ESC_light_x2.yml`` (the real ESC-light preset; a short schedule), with
   ``--time-plan demo_plan.json``: while it trains, the iterations left are re-planned against the
   minutes left (:mod:`esc_basicsr.tools.time_plan`), so that a machine that slows down still ends
   training within the announced minutes (fewer iterations, the schedule compressed), and says so;
5. ``python -m esc_basicsr.test`` and a comparison with bicubic upscaling on the same images.

Everything is written under ``--workdir``; a re-run reuses what is there (``--retrain`` starts the
training over, an interrupted training is resumed with ``--auto_resume``). Exit code 0 when the
trained model beats bicubic, 1 otherwise. The result is also saved to ``demo_result.json``, and a
side-by-side figure (input, bicubic, model, ground truth, PSNR under each) to ``demo_comparison.png``.

``--arbitrary-scale``: the same with ESC-LTE (one network for any factor), tested at x2.5
(:mod:`esc_basicsr.demo_lte`). The steps both demos share: :mod:`esc_basicsr.tools.demo`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

from .tools.demo import (TestSpec, forget_training, install_options, log, prepare_data, seconds_per_iteration_fresh,
                         set_deadline, test_and_report, train, write_demo_photos)

DEFAULT_ITERS = 400  # about 8 min of training on 2 CPU cores
DEFAULT_MINUTES = 11.0  # a slower machine trains fewer iterations, so that the whole demo stays under 15 min
STARTUP_SECONDS, STEP_OVERHEAD = 20.0, 1.1  # BasicSR's steps took 0.98-1.2x the fastest timed step here
MIN_ITERS = 150  # fewer do not reliably beat bicubic (+0.05 dB at 100, +0.2 at 150, +0.55-0.69 at 300)
NAME = 'demo_ESC_light_x2'
TRAIN_OPT, TEST_OPT = f'{NAME}.yml', 'demo_test_ESC_light_x2.yml'
CLASSIC = TestSpec(NAME, TEST_OPT, 'DemoTest', 'LRbicx2', 2)


def initial_weights(workdir: Path) -> Path:
    """ESC-light's random initialisation (seed 0) with a zero output convolution ``to_img``: the network
    starts as nearest-neighbour upscaling (see the demo option file). Returns the ``.pth`` path."""
    import torch
    import yaml
    from basicsr.archs import build_network

    path = workdir / 'init' / f'{NAME}_init.pth'
    if not path.is_file():
        opt = yaml.safe_load((workdir / 'options' / TRAIN_OPT).read_text())
        torch.manual_seed(0)
        net = build_network(opt['network_g'])
        torch.nn.init.zeros_(net.to_img.weight)
        torch.nn.init.zeros_(net.to_img.bias)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix('.tmp')
        torch.save({'params': net.state_dict()}, tmp)
        tmp.replace(path)
    return path


def measure_step(workdir: Path) -> float:
    """Seconds per training step of the demo's option file, timed in a fresh process."""
    return seconds_per_iteration_fresh(workdir / 'options' / TRAIN_OPT)


def plan_training(workdir: Path, minutes: float | None, iters: int | None,
                  step_seconds: Callable[[Path], float] = measure_step) -> dict:
    """Iterations and schedule (kept in ``demo_plan.json`` so that a resumed run keeps them).

    ``iters`` given: that many, whatever the time. Otherwise ``DEFAULT_ITERS`` (the same schedule on every
    machine), reduced to what fits in ``DEFAULT_MINUTES`` on a slow machine; ``minutes`` given: as many as
    fit in that budget. Never fewer than ``MIN_ITERS``. With a budget, the plan also holds it
    (``budget_seconds``, ``planned_seconds``, ``min_iter``): the training re-plans against it
    (:func:`esc_basicsr.tools.demo.set_deadline`).
    """
    plan_file = workdir / 'demo_plan.json'
    if plan_file.is_file():
        return json.loads(plan_file.read_text())
    per_iter = budget = None
    if iters is None:
        per_iter = step_seconds(workdir)
        budget = DEFAULT_MINUTES if minutes is None else minutes
        # BasicSR's start-up and, per step, data loading, EMA, logging and checkpoints on top
        fit = int((budget * 60 - STARTUP_SECONDS) / (per_iter * STEP_OVERHEAD))
        iters = min(DEFAULT_ITERS, fit) if minutes is None else fit
    iters = max(MIN_ITERS, min(iters, 3000))
    plan = dict(total_iter=iters, warmup_iter=max(15, iters // 10), checkpoint_freq=max(10, iters // 5),
                ema_decay=round(min(0.999, max(0.9, 1 - 10 / iters)), 4), seconds_per_iter=per_iter)
    if budget is not None:
        planned = STARTUP_SECONDS + iters * per_iter * STEP_OVERHEAD
        plan.update(budget_seconds=budget * 60, planned_seconds=round(planned, 1), min_iter=MIN_ITERS,
                    label='demo', check_every=10)
        if planned > budget * 60:  # even MIN_ITERS do not fit: say so rather than promise
            log(f'one training iteration takes {per_iter:.2f} s here: {iters} iterations (the fewest that reliably '
                f'beat bicubic) take about {planned / 60:.1f} min, more than {budget:g} min')
        else:
            log(f'one training iteration takes {per_iter:.2f} s here: {iters} iterations, about {planned / 60:.1f} '
                f'min of training (at most {budget:g} min: re-planned while it trains if the machine slows down)')
    plan_file.write_text(json.dumps(plan, indent=1) + '\n')
    return plan


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m esc_basicsr.demo', description=__doc__.split('\n')[0])
    parser.add_argument('--workdir', default=None,
                        help='where everything is written (demo_workdir; demo_workdir_lte with --arbitrary-scale)')
    parser.add_argument('--arbitrary-scale', action='store_true',
                        help='train and test ESC-LTE (any scale) instead, at x2.5 (esc_basicsr.demo_lte)')
    parser.add_argument('--iters', type=int, default=None,
                        help=f'training iterations (default {DEFAULT_ITERS}, fewer if they would take more than '
                             f'{DEFAULT_MINUTES:g} min here; ESC-LTE: see esc_basicsr.demo_lte)')
    parser.add_argument('--minutes', type=float, default=None,
                        help='train as many iterations as fit in this many minutes instead (ESC-light only)')
    parser.add_argument('--workers', type=int, default=2, help='processes for data preparation (2)')
    parser.add_argument('--retrain', action='store_true', help='discard an earlier demo model and train again')
    args = parser.parse_args(argv)
    if (args.minutes is not None and args.minutes <= 0) or (args.iters is not None and args.iters <= 0):
        parser.error('--minutes and --iters must be positive')
    if args.minutes is not None and args.iters is not None:
        parser.error('give --iters or --minutes, not both')
    if args.minutes is not None and args.arbitrary_scale:
        parser.error('--minutes is for the ESC-light demo; give --arbitrary-scale a number of --iters')
    args.workdir = args.workdir or ('demo_workdir_lte' if args.arbitrary_scale else 'demo_workdir')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.arbitrary_scale:
        from .demo_lte import run_demo
        return run_demo(args)
    started = time.perf_counter()
    workdir = write_demo_photos(args.workdir)

    log('[2/5] data preparation')
    if not prepare_data(workdir, [
            ['div2k', '--hr', 'photos/train', '--out', 'datasets/DEMO', '--name', 'DEMO_train', '--scales', '2',
             '--crop-size', '192', '--step', '96', '--workers', str(args.workers)],
            ['benchmark', '--hr', 'photos/test', '--out', 'datasets/DemoTest', '--scales', '2',
             '--workers', str(args.workers)]]):
        return 2
    install_options(workdir, (TRAIN_OPT, TEST_OPT))
    initial_weights(workdir)

    if args.retrain:
        forget_training(workdir, NAME)
    log('[3/5] training plan')
    plan = plan_training(workdir, args.minutes, args.iters)
    log(f'{plan["total_iter"]} iterations, warm-up {plan["warmup_iter"]}, cosine decay, EMA {plan["ema_decay"]}, '
        f'checkpoint every {plan["checkpoint_freq"]}')

    log('[4/5] training (BasicSR SRModel)')
    n = plan['total_iter']
    time_plan = set_deadline(workdir, NAME) if plan.get('budget_seconds') else None
    train_seconds = train(workdir, NAME, TRAIN_OPT, [
        f'train:total_iter={n}', f'train:warmup_iter={plan["warmup_iter"]}', f'train:scheduler:periods=[{n}]',
        f'train:ema_decay={plan["ema_decay"]}', f'logger:save_checkpoint_freq={plan["checkpoint_freq"]}'],
        time_plan=time_plan)
    plan = json.loads((workdir / 'demo_plan.json').read_text())  # the training's re-plans included

    log('[5/5] testing on the held-out photographs')
    return test_and_report(workdir, CLASSIC, plan, train_seconds, started)


if __name__ == '__main__':
    sys.exit(main())
