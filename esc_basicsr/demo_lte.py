"""``python -m esc_basicsr.demo --arbitrary-scale``: ESC-LTE (any scale) trained for a few minutes on a CPU.

The steps of the ESC-light demo (:mod:`esc_basicsr.demo`) with the arbitrary-scale pieces:

1. scikit-image's bundled photographs to ``photos/train`` and ``photos/test`` (the same photos);
2. ``python -m esc_basicsr.prepare benchmark --scales 2.5`` for the held-out ones (``GTmod12`` and
   the MATLAB-bicubic ``LRbicx2.5``); training reads the HR photos themselves;
3. ``python -m esc_basicsr.train`` with BasicSR's pipeline: ``LTEModel`` on ``LIIFDataset`` samples
   (random scale in [1, 4], sampled HR pixels), option file ``esc_basicsr/options/demo_ESC_LTE.yml``:
   a small ESC encoder with the LTE decoder, whose last layer starts at zero so that the network
   starts as its bilinear skip (as the ESC-light demo starts as nearest neighbour);
4. ``python -m esc_basicsr.test`` at x2.5 (``demo_test_ESC_LTE_x2.5.yml``), PSNR against MATLAB
   bicubic, ``demo_result.json`` and the comparison figure ``demo_comparison.png``.

A fixed number of iterations (``--iters``, default :data:`DEFAULT_ITERS`), so that every machine
trains the same model; see docs/arbitrary_scale.md for the measured times and PSNRs.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .tools.demo import (TestSpec, forget_training, install_options, log, prepare_data, test_and_report, train,
                         write_demo_photos)

NAME = 'demo_ESC_LTE'
TRAIN_OPT, TEST_OPT = f'{NAME}.yml', 'demo_test_ESC_LTE_x2.5.yml'
SCALE = 2.5
SPEC = TestSpec(NAME, TEST_OPT, 'DemoTestLTE', 'LRbicx2.5', SCALE)
DEFAULT_ITERS = 400


def initial_weights(workdir: Path) -> Path:
    """The network's random initialisation (seed 0) with the decoder's last layer at zero: the output
    is then LTE's bilinear skip, a sensible start for a few minutes of training. Returns the path."""
    import torch
    import yaml
    from basicsr.archs import build_network

    path = workdir / 'init' / f'{NAME}_init.pth'
    if not path.is_file():
        opt = yaml.safe_load((workdir / 'options' / TRAIN_OPT).read_text())
        torch.manual_seed(0)
        net = build_network(opt['network_g'])
        last = net.imnet.layers[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix('.tmp')
        torch.save({'params': net.state_dict()}, tmp)
        tmp.replace(path)
    return path


def plan_training(workdir: Path, iters: int | None) -> dict:
    """Iterations and the step schedule (kept in ``demo_plan.json`` so that a resumed run keeps them):
    the learning rate halves at 60 % and 85 % of the iterations (the recipe's MultiStepLR, compressed)."""
    plan_file = workdir / 'demo_plan.json'
    if plan_file.is_file():
        return json.loads(plan_file.read_text())
    n = iters or DEFAULT_ITERS
    plan = dict(total_iter=n, milestones=[max(1, int(n * 0.6)), max(2, int(n * 0.85))],
                checkpoint_freq=max(10, n // 4))
    plan_file.write_text(json.dumps(plan, indent=1) + '\n')
    return plan


def overrides(plan: dict) -> list[str]:
    """``--force_yml`` settings of the training command for ``plan``."""
    return [f'train:total_iter={plan["total_iter"]}', f'train:scheduler:milestones={plan["milestones"]}',
            f'logger:save_checkpoint_freq={plan["checkpoint_freq"]}']


def run_demo(args: argparse.Namespace) -> int:
    """The arbitrary-scale demo (arguments of :func:`esc_basicsr.demo.parse_args`); exit code 0 when
    ESC-LTE beats bicubic at x2.5, 1 when not, 2 when the data could not be prepared."""
    started = time.perf_counter()
    workdir = write_demo_photos(args.workdir)

    log('[2/5] data preparation (training reads the HR photographs: LIIF samples a scale per crop)')
    if not prepare_data(workdir, [['benchmark', '--hr', 'photos/test', '--out', f'datasets/{SPEC.test_set}',
                                   '--scales', f'{SCALE:g}', '--workers', str(args.workers)]]):
        return 2
    install_options(workdir, (TRAIN_OPT, TEST_OPT))
    initial_weights(workdir)

    if args.retrain:
        forget_training(workdir, NAME)
    log('[3/5] training plan')
    plan = plan_training(workdir, args.iters)
    log(f'{plan["total_iter"]} iterations, learning rate halved at {plan["milestones"]}, checkpoint every '
        f'{plan["checkpoint_freq"]}')

    log('[4/5] training (BasicSR LTEModel, LIIFDataset, scales 1-4)')
    train_seconds = train(workdir, NAME, TRAIN_OPT, overrides(plan))

    log(f'[5/5] testing at x{SCALE:g} on the held-out photographs')
    return test_and_report(workdir, SPEC, plan, train_seconds, started)
