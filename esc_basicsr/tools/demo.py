"""Machinery of the demos (``python -m esc_basicsr.demo``, ``--arbitrary-scale``): the photographs,
the packaged option files, the steps that run the real commands, and the test report.

The demos drive the command-line tools as a user would: ``python -m esc_basicsr.prepare``,
``.train`` and ``.test``, each in its own process in the work folder (so a logged ``$ python -m ...``
line is exactly what ran). What differs between the demos (the network's initial weights, the
training plan) is in their commands, :mod:`esc_basicsr.demo` and :mod:`esc_basicsr.demo_lte`.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

# detailed photographs (mostly-black or blurred ones such as hubble_deep_field or clock teach little)
TRAIN_PHOTOS = ('astronaut', 'coffee', 'immunohistochemistry', 'stereo_motorcycle', 'brick', 'grass', 'gravel',
                'colorwheel')
TEST_PHOTOS = ('chelsea', 'rocket', 'camera', 'coins')  # held out
TEST_CROP = 288  # centre crops keep CPU testing short
FIGURE_CROP = 72  # output pixels per crop: 4 photos x 4 panels stay a small PNG (about 200 KB)


@dataclass(frozen=True)
class TestSpec:
    """What the demo's test step reads: BasicSR's results of ``test_opt`` for the held-out set."""

    name: str  # the experiment (option files' ``name``)
    test_opt: str
    test_set: str  # under workdir/datasets, with GTmod12 and lr_folder; also the dataset's ``name``
    lr_folder: str
    scale: float


def log(message: str) -> None:
    print(f'[demo] {message}', flush=True)


def write_photos(folder: Path, names: tuple[str, ...], crop: int | None = None) -> list[str]:
    """Save skimage.data photographs as PNG (BGR for OpenCV); returns the names written."""
    import cv2
    from skimage import data

    from ..utils.image_io import write_png

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
            write_png(target, np.ascontiguousarray(img))
        written.append(name)
    return written


def write_demo_photos(workdir_arg: str) -> Path:
    """Step 1 of both demos: the work folder with the training and held-out photographs."""
    workdir = Path(workdir_arg).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log(f'[1/5] scikit-image photographs -> {workdir}/photos (train: {len(TRAIN_PHOTOS)}, held-out test: '
        f'{len(TEST_PHOTOS)})')
    write_photos(workdir / 'photos' / 'train', TRAIN_PHOTOS)
    write_photos(workdir / 'photos' / 'test', TEST_PHOTOS, crop=TEST_CROP)
    return workdir


def install_options(workdir: Path, names: Sequence[str]) -> None:
    """Copy the packaged demo option files ``names`` to ``workdir/options`` (paths in them are
    workdir-relative)."""
    (workdir / 'options').mkdir(exist_ok=True)
    for name in names:
        text = resources.files('esc_basicsr').joinpath('options', name).read_text()
        (workdir / 'options' / name).write_text(text)


def seconds_per_iteration(opt_file: Path, warmup: int = 2, repeats: int = 8) -> float:
    """Fastest wall time of a training step of an option file's network and batch (forward, L1,
    backward, AdamW).

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


def seconds_per_iteration_fresh(opt_file: Path) -> float:
    """:func:`seconds_per_iteration` timed in a fresh process, like the training that follows."""
    code = ('import sys; from pathlib import Path; from esc_basicsr.tools.demo import seconds_per_iteration; '
            'print(seconds_per_iteration(Path(sys.argv[1])))')
    out = subprocess.run([sys.executable, '-c', code, str(opt_file)], check=True, capture_output=True,
                         text=True).stdout
    return float(out.split()[-1])


def run(cmd: list[str], cwd: Path) -> None:
    log('$ python ' + ' '.join(cmd[1:]))
    subprocess.run(cmd, cwd=cwd, check=True)


def forget_training(workdir: Path, name: str) -> None:
    """``--retrain``: remove experiment ``name`` and the training plan, so that training starts over."""
    shutil.rmtree(workdir / 'experiments' / name, ignore_errors=True)
    (workdir / 'demo_plan.json').unlink(missing_ok=True)


def prepare_data(workdir: Path, commands: list[list[str]]) -> bool:
    """Run ``python -m esc_basicsr.prepare`` in ``workdir`` for each command (``photos/``, ``datasets/``:
    workdir-relative); False (after saying so) when one fails."""
    for cmd in commands:
        log('$ python -m esc_basicsr.prepare ' + ' '.join(cmd))
        if subprocess.run([sys.executable, '-m', 'esc_basicsr.prepare', *cmd], cwd=workdir).returncode != 0:
            log('data preparation failed')
            return False
    return True


def set_deadline(workdir: Path, name: str, now: float | None = None) -> str:
    """Write the training's deadline into ``demo_plan.json`` (its ``budget_seconds`` from now; a resumed
    training gets the share of the budget of the iterations it has left). Returns the plan's file name,
    for ``python -m esc_basicsr.train --time-plan`` (:mod:`esc_basicsr.tools.time_plan`)."""
    plan_file = workdir / 'demo_plan.json'
    plan = json.loads(plan_file.read_text())
    states = (workdir / 'experiments' / name / 'training_states').glob('*.state')
    done = max((int(p.stem) for p in states if p.stem.isdigit()), default=0)
    share = max(0.0, 1 - done / plan['total_iter'])
    plan['deadline'] = (time.time() if now is None else now) + plan['budget_seconds'] * share
    plan_file.write_text(json.dumps(plan, indent=1) + '\n')
    return plan_file.name


def train(workdir: Path, name: str, train_opt: str, overrides: list[str], time_plan: str | None = None) -> float | None:
    """``python -m esc_basicsr.train`` (resumable) unless ``experiments/<name>`` holds a trained model;
    with ``time_plan`` (a plan file in ``workdir``), re-planned against its deadline as it trains.
    Returns the training time in seconds, None when skipped."""
    if (workdir / 'experiments' / name / 'models' / 'net_g_latest.pth').is_file():
        log(f'{workdir}/experiments/{name}/models/net_g_latest.pth exists: skipping training (--retrain to '
            'train again)')
        return None
    t = time.perf_counter()
    planned = ['--time-plan', time_plan] if time_plan else []
    run([sys.executable, '-m', 'esc_basicsr.train', *planned, '-opt', f'options/{train_opt}', '--auto_resume',
         '--force_yml', *overrides], cwd=workdir)
    return time.perf_counter() - t


def training_summary(plan: dict, train_seconds: float | None) -> str:
    """The report's sentence on training time: ``Training: 9.3 min (planned about 9.1, at most 11).``, with the
    re-plans if any."""
    if train_seconds is None:
        return 'Trained by an earlier run.'
    text = f'Training: {train_seconds / 60:.1f} min'
    if plan.get('planned_seconds'):
        text += f' (planned about {plan["planned_seconds"] / 60:.1f}, at most {plan["budget_seconds"] / 60:g}'
        replans = plan.get('replans', [])
        if replans:
            times = 'once' if len(replans) == 1 else f'{len(replans)} times'
            text += f'; re-planned {times}: {replans[0]["old"]} -> {plan["total_iter"]} iterations'
        text += ')'
    return text + '.'


def comparison_rows(workdir: Path, spec: TestSpec) -> list:
    """A :class:`~esc_basicsr.tools.comparison.ComparisonRow` per held-out photo: its LR input, MATLAB
    bicubic, the model's saved test output and the ground truth (PSNR: Y channel, ``ceil(scale)`` border)."""
    import cv2

    from .comparison import ComparisonRow, align_gt, bicubic_upscale

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


def trained_network(workdir: Path, spec: TestSpec) -> tuple[str, bool]:
    """The tested network's name in the table and the figure (``ESC-light``, as ``infer --compare``
    names it) and whether it renders any scale (then ``infer`` needs ``--scale``)."""
    import yaml

    from ..archs.presets import display_name
    from ..archs.table import ARCHITECTURES

    network_g = yaml.safe_load((workdir / 'options' / spec.test_opt).read_text())['network_g']
    return display_name(network_g), ARCHITECTURES[network_g['type']].arbitrary_scale


def test_and_report(workdir: Path, spec: TestSpec, plan: dict, train_seconds: float | None, started: float) -> int:
    """``python -m esc_basicsr.test``, then PSNRs against bicubic, ``demo_result.json`` and
    ``demo_comparison.png``. Returns the exit code: 0 if the model beats bicubic, else 1."""
    from .comparison import summary_table, write_comparison

    label, any_scale = trained_network(workdir, spec)
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
    weights = workdir / 'experiments' / spec.name / 'models' / 'net_g_latest.pth'
    total = time.perf_counter() - started
    result = dict(scale=spec.scale, bicubic_psnr=mean_bicubic, model_psnr=mean_model, margin_db=margin,
                  per_image_bicubic=bicubic, per_image_model=model, plan=plan, train_seconds=train_seconds,
                  total_seconds=total, figure=str(figure), weights=str(weights))
    (workdir / 'demo_result.json').write_text(json.dumps(result, indent=1) + '\n')
    verdict = 'beats' if margin > 0 else 'does NOT beat'
    scale_arg = f' --scale {spec.scale:g}' if any_scale else ''
    print(f'\n{label} ({plan["total_iter"]} iterations) {verdict} bicubic at x{spec.scale:g} by {margin:+.2f} dB. '
          f'{training_summary(plan, train_seconds)} Demo time: {total / 60:.1f} min. '
          f'Results: {workdir}/demo_result.json\n'
          f'Comparison figure (input, bicubic, {label}, ground truth): {figure}\n'
          f'Trained weights (params, params_ema): {weights}\n'
          f'  use them: python -m esc_basicsr.infer -i YOUR_IMAGES -o OUT --weights {weights}{scale_arg}', flush=True)
    return 0 if margin > 0 else 1
