"""``python -m esc_basicsr.demo --workdir demo_workdir``: the whole BasicSR workflow in minutes, offline.

1. writes scikit-image's bundled photographs (no download) to ``photos/train`` and ``photos/test``;
2. ``python -m esc_basicsr.prepare``: a DIV2K-like x2 LMDB from the training photos and a
   benchmark-style test set (``GTmod12``/``LRbicx2``) from the held-out ones;
3. plans 400 iterations (fewer where one training step is too slow for 11 minutes, see ``--minutes``);
4. ``python -m esc_basicsr.train`` (BasicSR's ``SRModel``) from the packaged option file
   ``esc_basicsr/options/demo_ESC_light_x2.yml`` (the real ESC-light preset; a short schedule);
5. ``python -m esc_basicsr.test`` and a comparison with bicubic upscaling on the same images.

Everything is written under ``--workdir``; a re-run reuses what is there (``--retrain`` starts the
training over, an interrupted training is resumed with ``--auto_resume``). Exit code 0 when the
trained model beats bicubic, 1 otherwise. The result is also saved to ``demo_result.json``, and a
side-by-side figure (input, bicubic, model, ground truth, PSNR under each) to ``demo_comparison.png``.

``--arbitrary-scale``: the same with ESC-LTE (one network for any factor), tested at x2.5
(:mod:`esc_basicsr.demo_lte`).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from importlib import resources
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

# detailed photographs (mostly-black or blurred ones such as hubble_deep_field or clock teach little)
TRAIN_PHOTOS = ('astronaut', 'coffee', 'immunohistochemistry', 'stereo_motorcycle', 'brick', 'grass', 'gravel',
                'colorwheel')
TEST_PHOTOS = ('chelsea', 'rocket', 'camera', 'coins')  # held out
TEST_CROP = 288  # centre crops keep CPU testing short
DEFAULT_ITERS = 400  # about 8 min of training on 2 CPU cores
DEFAULT_MINUTES = 11.0  # a slower machine trains fewer iterations, so that the whole demo stays under 15 min
STARTUP_SECONDS, STEP_OVERHEAD = 20.0, 1.1  # BasicSR's steps took 0.98-1.2x the fastest timed step here
MIN_ITERS = 150  # fewer do not reliably beat bicubic (+0.05 dB at 100, +0.2 at 150, +0.55-0.69 at 300)
NAME = 'demo_ESC_light_x2'
TRAIN_OPT, TEST_OPT = f'{NAME}.yml', 'demo_test_ESC_light_x2.yml'
FIGURE_CROP = 72  # output pixels per crop: 4 photos x 4 panels stay a small PNG (about 200 KB)


@dataclass(frozen=True)
class TestSpec:
    """What the demo's test step reads: BasicSR's results of ``test_opt`` for the held-out set."""

    name: str  # the experiment (option files' ``name``)
    test_opt: str
    test_set: str  # under workdir/datasets, with GTmod12 and lr_folder; also the dataset's ``name``
    lr_folder: str
    scale: float


CLASSIC = TestSpec(NAME, TEST_OPT, 'DemoTest', 'LRbicx2', 2)


def log(message: str) -> None:
    print(f'[demo] {message}', flush=True)


def write_photos(folder: Path, names: tuple[str, ...], crop: int | None = None) -> list[str]:
    """Save skimage.data photographs as PNG (BGR for OpenCV); returns the names written."""
    import cv2
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        target = folder / f'{name}.png'
        if not target.exists():
            img = getattr(data, name)()
            img = img[0] if isinstance(img, tuple) else img  # stereo_motorcycle: (left, right, disparity)
            if crop is not None:
                h, w = img.shape[:2]
                y, x = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
                img = img[y:y + crop, x:x + crop]
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
            from .data_prep.imageio import write_png
            write_png(target, np.ascontiguousarray(img))
        written.append(name)
    return written


def install_options(workdir: Path, names: Sequence[str] = (TRAIN_OPT, TEST_OPT)) -> None:
    """Copy the packaged demo option files to ``workdir/options`` (paths in them are workdir-relative)."""
    (workdir / 'options').mkdir(exist_ok=True)
    for name in names:
        text = resources.files('esc_basicsr').joinpath('options', name).read_text()
        (workdir / 'options' / name).write_text(text)


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


def seconds_per_iteration(opt_file: Path, warmup: int = 2, repeats: int = 8) -> float:
    """Fastest wall time of a training step of the demo's network and batch (forward, L1, backward, AdamW).

    The fastest, not the median: on a shared machine a few steps often run 1.5x slower (a median of
    6 steps read 1.49-1.87 s where the training that followed ran at 1.17-1.24 s per step).
    """
    import torch
    import yaml
    from basicsr.archs import build_network

    opt = yaml.safe_load(opt_file.read_text())
    ds, scale = opt['datasets']['train'], opt['scale']
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    net = build_network(opt['network_g']).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), 1e-4)
    b, p = ds['batch_size_per_gpu'], ds['gt_size'] // scale
    x, y = torch.rand(b, 3, p, p, device=device), torch.rand(b, 3, p * scale, p * scale, device=device)
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        loss = (net(x) - y).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if i >= warmup:  # the first steps include one-off set-up (allocator, oneDNN primitives)
            times.append(time.perf_counter() - start)
    return min(times)


def measure_step(workdir: Path) -> float:
    """:func:`seconds_per_iteration` timed in a fresh process, like the training that follows."""
    code = ('import sys; from pathlib import Path; from esc_basicsr.demo import seconds_per_iteration; '
            'print(seconds_per_iteration(Path(sys.argv[1])))')
    out = subprocess.run([sys.executable, '-c', code, str(workdir / 'options' / TRAIN_OPT)], check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def plan_training(workdir: Path, minutes: float | None, iters: int | None,
                  step_seconds: Callable[[Path], float] = measure_step) -> dict:
    """Iterations and schedule (kept in ``demo_plan.json`` so that a resumed run keeps them).

    ``iters`` given: that many. Otherwise ``DEFAULT_ITERS`` (the same schedule on every machine),
    reduced to what fits in ``DEFAULT_MINUTES`` on a slow machine; ``minutes`` given: as many as fit in
    that budget. Never fewer than ``MIN_ITERS``.
    """
    plan_file = workdir / 'demo_plan.json'
    if plan_file.is_file():
        return json.loads(plan_file.read_text())
    per_iter = None
    if iters is None:
        per_iter = step_seconds(workdir)
        budget = DEFAULT_MINUTES if minutes is None else minutes
        # BasicSR's start-up and, per step, data loading, EMA, logging and checkpoints on top
        fit = int((budget * 60 - STARTUP_SECONDS) / (per_iter * STEP_OVERHEAD))
        iters = min(DEFAULT_ITERS, fit) if minutes is None else fit
        log(f'one training iteration takes {per_iter:.2f} s here: {fit} fit in {budget:g} min -> {iters}')
    iters = max(MIN_ITERS, min(iters, 3000))
    plan = dict(total_iter=iters, warmup_iter=max(15, iters // 10), checkpoint_freq=max(10, iters // 5),
                ema_decay=round(min(0.999, max(0.9, 1 - 10 / iters)), 4), seconds_per_iter=per_iter)
    plan_file.write_text(json.dumps(plan, indent=1) + '\n')
    return plan


def run(cmd: list[str], cwd: Path) -> None:
    log('$ python ' + ' '.join(cmd[1:]))
    subprocess.run(cmd, cwd=cwd, check=True)


def prepare_data(workdir: Path, commands: list[list[str]]) -> bool:
    """Run ``python -m esc_basicsr.prepare`` for each command (``photos/``, ``datasets/``: workdir-relative)."""
    from . import prepare

    for cmd in commands:
        log('$ python -m esc_basicsr.prepare ' + ' '.join(cmd))
        absolute = [str(workdir / c) if c.startswith(('photos/', 'datasets/')) else c for c in cmd]
        if prepare.main(absolute) != 0:
            log('data preparation failed')
            return False
    return True


def comparison_rows(workdir: Path, spec: TestSpec) -> list:
    """A :class:`~esc_basicsr.tools.comparison.ComparisonRow` per held-out photo: its LR input, MATLAB
    bicubic, the model's saved test output and the ground truth (PSNR: Y channel, ``ceil(scale)`` border)."""
    import cv2

    from .tools.comparison import ComparisonRow, align_gt, bicubic_upscale

    test_dir = workdir / 'datasets' / spec.test_set
    results = workdir / 'results' / spec.name / 'visualization' / spec.test_set
    rows = []
    for gt_path in sorted((test_dir / 'GTmod12').glob('*.png')):
        lq, gt, sr = (cv2.imread(str(p))[:, :, ::-1] for p in (
            test_dir / spec.lr_folder / gt_path.name, gt_path, results / f'{gt_path.stem}_{spec.name}.png'))
        gt, why = align_gt(gt, lq.shape, spec.scale)  # the top-left of GTmod12 at a non-integer scale
        if gt is None:
            raise ValueError(f'{gt_path}: {why}')
        rows.append(ComparisonRow.create(gt_path.stem, lq, bicubic_upscale(lq, gt.shape[:2]), sr, gt, spec.scale))
    return rows


def logged_psnr(workdir: Path, name: str) -> float:
    """The mean PSNR of BasicSR's latest test log of experiment ``name``."""
    logs = (workdir / 'results' / name).glob(f'test_{name}_*.log')
    return float(re.findall(r'# psnr: ([\d.]+)', max(logs, key=lambda p: p.stat().st_mtime).read_text())[-1])


def tested_network(workdir: Path, spec: TestSpec) -> tuple[str, bool]:
    """The tested network's name in the table and the figure (``ESC-light``, as ``infer --compare``
    names it) and whether it renders any scale (then ``infer`` needs ``--scale``)."""
    import yaml

    from .archs.presets import display_name
    from .archs.table import ARCHITECTURES

    network_g = yaml.safe_load((workdir / 'options' / spec.test_opt).read_text())['network_g']
    return display_name(network_g), ARCHITECTURES[network_g['type']].scale_arg is None


def test_and_report(workdir: Path, spec: TestSpec, plan: dict, train_seconds: float | None, started: float) -> int:
    """``python -m esc_basicsr.test``, then PSNRs against bicubic, ``demo_result.json`` and
    ``demo_comparison.png``. Returns the exit code: 0 if the model beats bicubic, else 1."""
    from .tools.comparison import summary_table, write_comparison

    label, any_scale = tested_network(workdir, spec)

    shutil.rmtree(workdir / 'results' / spec.name, ignore_errors=True)
    run([sys.executable, '-m', 'esc_basicsr.test', '-opt', f'options/{spec.test_opt}'], cwd=workdir)
    rows = comparison_rows(workdir, spec)
    bicubic = {r.name: r.psnr['bicubic'] for r in rows}
    model = {r.name: r.psnr['model'] for r in rows}
    mean_bicubic, mean_model = float(np.mean(list(bicubic.values()))), float(np.mean(list(model.values())))
    logged = logged_psnr(workdir, spec.name)
    assert math.isclose(mean_model, logged, abs_tol=1e-3), (mean_model, logged)  # the same measure as BasicSR's
    margin = mean_model - mean_bicubic
    print(f'\nPSNR (dB, Y channel, {math.ceil(spec.scale)}-pixel border), x{spec.scale:g}, held-out photographs:')
    print(summary_table(rows, label))
    figure = write_comparison(workdir / 'demo_comparison.png', rows, crop=FIGURE_CROP, model_label=label)
    total = time.perf_counter() - started
    weights = workdir / 'experiments' / spec.name / 'models' / 'net_g_latest.pth'
    result = dict(scale=spec.scale, bicubic_psnr=mean_bicubic, model_psnr=mean_model, margin_db=margin,
                  per_image_bicubic=bicubic, per_image_model=model, plan=plan, train_seconds=train_seconds,
                  total_seconds=total, figure=str(figure), weights=str(weights))
    (workdir / 'demo_result.json').write_text(json.dumps(result, indent=1) + '\n')
    verdict = 'beats' if margin > 0 else 'does NOT beat'
    how = f'{train_seconds / 60:.1f} min of training' if train_seconds is not None else 'trained by an earlier run'
    scale_arg = f' --scale {spec.scale:g}' if any_scale else ''
    print(f'\n{label} ({plan["total_iter"]} iterations, {how}) {verdict} bicubic at x{spec.scale:g} by '
          f'{margin:+.2f} dB. Demo time: {total / 60:.1f} min. Results: {workdir}/demo_result.json\n'
          f'Comparison figure (input, bicubic, {label}, ground truth): {figure}\n'
          f'Trained weights (params, params_ema): {weights}\n'
          f'  use them: python -m esc_basicsr.infer -i YOUR_IMAGES -o OUT --weights {weights}{scale_arg}', flush=True)
    return 0 if margin > 0 else 1


def train(workdir: Path, name: str, train_opt: str, overrides: list[str]) -> float | None:
    """``python -m esc_basicsr.train`` (resumable) unless ``experiments/<name>`` holds a trained model;
    returns the training time in seconds, None when skipped."""
    if (workdir / 'experiments' / name / 'models' / 'net_g_latest.pth').is_file():
        log(f'{workdir}/experiments/{name}/models/net_g_latest.pth exists: skipping training (--retrain to '
            'train again)')
        return None
    t = time.perf_counter()
    run([sys.executable, '-m', 'esc_basicsr.train', '-opt', f'options/{train_opt}', '--auto_resume',
         '--force_yml', *overrides], cwd=workdir)
    return time.perf_counter() - t


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


def write_demo_photos(workdir_arg: str) -> Path:
    """Step 1 of both demos: the work folder with the training and held-out photographs."""
    workdir = Path(workdir_arg).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log(f'[1/5] scikit-image photographs -> {workdir}/photos (train: {len(TRAIN_PHOTOS)}, held-out test: '
        f'{len(TEST_PHOTOS)})')
    write_photos(workdir / 'photos' / 'train', TRAIN_PHOTOS)
    write_photos(workdir / 'photos' / 'test', TEST_PHOTOS, crop=TEST_CROP)
    return workdir


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
    install_options(workdir)
    initial_weights(workdir)

    if args.retrain:
        shutil.rmtree(workdir / 'experiments' / NAME, ignore_errors=True)
        (workdir / 'demo_plan.json').unlink(missing_ok=True)
    log('[3/5] training plan')
    plan = plan_training(workdir, args.minutes, args.iters)
    log(f'{plan["total_iter"]} iterations, warm-up {plan["warmup_iter"]}, cosine decay, EMA {plan["ema_decay"]}, '
        f'checkpoint every {plan["checkpoint_freq"]}')

    log('[4/5] training (BasicSR SRModel)')
    n = plan['total_iter']
    train_seconds = train(workdir, NAME, TRAIN_OPT, [
        f'train:total_iter={n}', f'train:warmup_iter={plan["warmup_iter"]}', f'train:scheduler:periods=[{n}]',
        f'train:ema_decay={plan["ema_decay"]}', f'logger:save_checkpoint_freq={plan["checkpoint_freq"]}'])

    log('[5/5] testing on the held-out photographs')
    return test_and_report(workdir, CLASSIC, plan, train_seconds, started)


if __name__ == '__main__':
    sys.exit(main())
