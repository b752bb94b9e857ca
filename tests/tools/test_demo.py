"""The demo: its set-up (option files, initial weights, training plan, argument errors), its arbitrary-scale
mode (arguments, plan, start as bilinear) and its comparison step (no training)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import yaml

from esc_basicsr import demo, demo_lte
from esc_basicsr.tools import demo as demo_tools
from esc_basicsr.tools.comparison import bicubic_upscale, psnr_y


def test_arbitrary_scale_arguments():
    args = demo.parse_args(['--arbitrary-scale', '--iters', '7'])
    assert args.arbitrary_scale and args.iters == 7 and args.workdir == 'demo_workdir_lte'
    assert demo.parse_args([]).workdir == 'demo_workdir' and not demo.parse_args([]).arbitrary_scale
    assert demo.parse_args(['--arbitrary-scale', '--workdir', 'w']).workdir == 'w'


def test_arbitrary_scale_rejects_minutes(capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(['--arbitrary-scale', '--minutes', '3'])
    assert '--minutes is for the ESC-light demo' in capsys.readouterr().err


def test_lte_plan_is_kept_and_becomes_force_yml(tmp_path):
    plan = demo_lte.plan_training(tmp_path, None)
    assert plan['total_iter'] == demo_lte.DEFAULT_ITERS
    assert plan['milestones'] == [int(demo_lte.DEFAULT_ITERS * 0.6), int(demo_lte.DEFAULT_ITERS * 0.85)]
    assert demo_lte.plan_training(tmp_path, 5) == plan  # a resumed run keeps its schedule
    (tmp_path / 'demo_plan.json').unlink()
    small = demo_lte.plan_training(tmp_path, 10)
    assert small['milestones'] == [6, 8]
    assert demo_lte.overrides(small) == ['train:total_iter=10', 'train:scheduler:milestones=[6, 8]',
                                         'logger:save_checkpoint_freq=10']


def test_lte_option_files_agree_and_start_as_bilinear(tmp_path):
    """The packaged LTE option files install; train and test describe the same network, and the
    initial weights make it LTE's bilinear skip (what the few minutes of training improve on)."""
    from basicsr.archs import build_network

    demo_tools.install_options(tmp_path, (demo_lte.TRAIN_OPT, demo_lte.TEST_OPT))
    train = yaml.safe_load((tmp_path / 'options' / demo_lte.TRAIN_OPT).read_text())
    test = yaml.safe_load((tmp_path / 'options' / demo_lte.TEST_OPT).read_text())
    assert train['network_g'] == test['network_g'] and train['model_type'] == test['model_type'] == 'LTEModel'
    assert test['scale'] == demo_lte.SCALE and test['datasets']['test_1']['name'] == demo_lte.SPEC.test_set
    assert train['path']['pretrain_network_g'] == f'init/{demo_lte.NAME}_init.pth'
    net = build_network(train['network_g']).eval()
    net.load_state_dict(torch.load(demo_lte.initial_weights(tmp_path), weights_only=True)['params'])
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        y = net.upscale(x, (30, 40))
    bilinear = torch.nn.functional.interpolate(x, (30, 40), mode='bilinear', align_corners=False)
    assert torch.allclose(y, bilinear, atol=1e-5)


@pytest.mark.parametrize('spec', [demo.CLASSIC, demo_lte.SPEC], ids=['x2', 'x2.5'])
def test_comparison_rows_read_basicsr_results(tmp_path, spec):
    """The demo compares BasicSR's saved test outputs with MATLAB bicubic on the GT's matching part."""
    test_dir = tmp_path / 'datasets' / spec.test_set
    results = tmp_path / 'results' / spec.name / 'visualization' / spec.test_set
    for folder in (test_dir / 'GTmod12', test_dir / spec.lr_folder, results):
        folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    gt = cv2.GaussianBlur(rng.integers(0, 256, (48, 60, 3), dtype=np.uint8), (5, 5), 2)
    lq = cv2.resize(gt, (math.floor(60 / spec.scale), math.floor(48 / spec.scale)), interpolation=cv2.INTER_AREA)
    h, w = round(lq.shape[0] * spec.scale), round(lq.shape[1] * spec.scale)
    sr = gt[:h, :w].copy()
    sr[10:20, 10:20] = 0
    cv2.imwrite(str(test_dir / 'GTmod12' / 'img.png'), gt)
    cv2.imwrite(str(test_dir / spec.lr_folder / 'img.png'), lq)
    cv2.imwrite(str(results / f'img_{spec.name}.png'), sr)
    (row,) = demo_tools.comparison_rows(tmp_path, spec)
    rgb = lambda a: a[:, :, ::-1]  # noqa: E731
    assert row.psnr['model'] == pytest.approx(psnr_y(rgb(sr), rgb(gt[:h, :w]), spec.scale))
    assert row.psnr['bicubic'] == pytest.approx(psnr_y(bicubic_upscale(rgb(lq), (h, w)), rgb(gt[:h, :w]),
                                                       spec.scale))


@pytest.mark.slow
def test_arbitrary_scale_demo_end_to_end(tmp_path, capsys):
    """Two iterations through the real commands (prepare, BasicSR train/test with LTEModel; 22 s on 2
    idle cores): still LTE's bilinear skip, so below bicubic (exit code 1), with the figure and result."""
    workdir = tmp_path / 'lte'
    assert demo.main(['--arbitrary-scale', '--iters', '2', '--workdir', str(workdir)]) == 1
    out = capsys.readouterr().out
    result = yaml.safe_load((workdir / 'demo_result.json').read_text())
    assert result['scale'] == 2.5 and result['plan']['total_iter'] == 2
    assert result['bicubic_psnr'] == pytest.approx(30.26, abs=0.01)  # the held-out crops, MATLAB bicubic
    assert 29.5 < result['model_psnr'] < result['bicubic_psnr']  # ~ bilinear (29.65) after 2 steps
    assert set(result['per_image_model']) == set(demo_tools.TEST_PHOTOS)
    figure = workdir / 'demo_comparison.png'
    assert f'Comparison figure (input, bicubic, ESC-LTE, ground truth): {figure}' in out
    weights = workdir / 'experiments' / demo_lte.NAME / 'models' / 'net_g_latest.pth'
    assert weights.is_file() and result['weights'] == str(weights)
    assert f'Trained weights (params, params_ema): {weights}\n  use them: python -m esc_basicsr.infer -i ' in out
    assert out.rstrip().endswith(f'--weights {weights} --scale 2.5')  # ESC-LTE renders the scale it is given
    assert cv2.imread(str(figure)).shape[1] == 4 * 216 + 5 * 6  # 72-pixel crops enlarged 3x


# ------------------------------------------------------------------------ set-up of the classic demo

def test_demo_setup_starts_as_nearest_neighbour(tmp_path):
    """The demo's packaged option files install into a work folder, and its initial weights (ESC-light,
    zero output convolution) make the network start as nearest-neighbour upscaling."""
    from basicsr.archs import build_network

    from esc_basicsr.tools.demo import install_options

    install_options(tmp_path, (demo.TRAIN_OPT, demo.TEST_OPT))
    opt = yaml.safe_load((tmp_path / 'options' / demo.TRAIN_OPT).read_text())
    assert opt['path']['pretrain_network_g'] == f'init/{demo.NAME}_init.pth'
    net = build_network(opt['network_g'])
    net.load_state_dict(torch.load(demo.initial_weights(tmp_path), weights_only=True)['params'])
    x = torch.rand(1, 3, 12, 20)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), x.repeat_interleave(2, -1).repeat_interleave(2, -2))
    plan = demo.plan_training(tmp_path, minutes=1, iters=10)
    assert plan['total_iter'] == demo.MIN_ITERS and (tmp_path / 'demo_plan.json').is_file()


@pytest.mark.parametrize('minutes, iters, step, expected', [
    (None, None, 1.0, 400),   # default: a fixed count, the same schedule on every normal machine
    (None, None, 2.0, 290),   # slow machine: what fits in 11 min ((660 - 20) / (2.0 * 1.1))
    (None, None, 20.0, 150),  # never below the count that reliably beats bicubic
    (3.0, None, 1.0, 150),    # an explicit budget: (180 - 20) / 1.1 = 145 -> the floor, 150
    (20.0, None, 1.0, 1072),  # a longer budget trains longer ((1200 - 20) / 1.1)
    (None, 1000, None, 1000),  # an explicit count is not timed
])
def test_demo_plan(tmp_path, minutes, iters, step, expected):
    def step_seconds(_):
        assert step is not None, 'an explicit --iters must not time a step'
        return step

    plan = demo.plan_training(tmp_path, minutes, iters, step_seconds=step_seconds)
    assert plan['total_iter'] == expected
    assert plan['warmup_iter'] == max(15, expected // 10) and 0.9 <= plan['ema_decay'] <= 0.999
    # kept for a resumed run, even if called with other arguments
    assert demo.plan_training(tmp_path, None, 5, step_seconds=step_seconds) == plan


@pytest.mark.parametrize('argv, message', [(['--iters', '0'], 'must be positive'),
                                           (['--minutes', '-1'], 'must be positive'),
                                           (['--iters', '10', '--minutes', '5'], 'not both')])
def test_demo_rejects_bad_arguments(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        demo.main(['--workdir', str(tmp_path / 'w')] + argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'w').exists()  # nothing written before the arguments are checked


def test_retrain_forgets_only_this_experiment_and_the_plan(tmp_path):
    forget_training = demo_tools.forget_training
    for name in (demo.NAME, 'other'):
        (tmp_path / 'experiments' / name / 'models').mkdir(parents=True)
        (tmp_path / 'experiments' / name / 'models' / 'net_g_10.pth').write_bytes(b'w')
    (tmp_path / 'demo_plan.json').write_text('{}')
    forget_training(tmp_path, demo.NAME)
    assert not (tmp_path / 'experiments' / demo.NAME).exists() and not (tmp_path / 'demo_plan.json').exists()
    assert (tmp_path / 'experiments' / 'other' / 'models' / 'net_g_10.pth').read_bytes() == b'w'
    forget_training(tmp_path, demo.NAME)  # nothing left to forget: no error
