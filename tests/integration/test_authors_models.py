"""The authors' model types (ESRModel, RealHATMSEModel, RealHATGANModel) in BasicSR, on the CPU.

Their options (mixed precision, gradient clipping and its halving, momentum resets, optimizers,
perceptual loss, test-time padding), the refusals of options we do not implement, and an option
file in the authors' form trained, resumed and tested through ``python -m basicsr.*``.
"""
from __future__ import annotations

import copy
import logging
import re
import shutil
import subprocess
import sys
import types
import uuid
from pathlib import Path

import basicsr
import pytest
import torch
from basicsr.models import build_model
from basicsr.models.realesrgan_model import RealESRGANModel
from basicsr.models.realesrnet_model import RealESRNetModel
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY

from esc_basicsr.integration.fixes import resume
from esc_basicsr.integration.models import ESRModel, RealHATGANModel, RealHATMSEModel
from esc_basicsr.integration.models.window_padding import pad_to_multiple

from tests.integration.helpers import TINY_ESC, load_options, make_data, reset_basicsr_logger, tiny_train_options, \
    write_options

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason='checks the behaviour without CUDA')


def esr_opt(tmp_path: Path | None = None, **train) -> dict:
    """A tiny ESRModel option dict as BasicSR's parse_options returns it (CPU, not distributed)."""
    opt = {'name': 'esr', 'model_type': 'ESRModel', 'scale': 2, 'num_gpu': 0, 'is_train': True, 'dist': False,
           'rank': 0, 'world_size': 1, 'network_g': dict(type='ESC', upscaling_factor=2, **TINY_ESC),
           'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
           'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 10,
                     'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}}
    opt['train'].update(train)
    if tmp_path is not None:
        opt['path']['training_states'] = str(tmp_path)
    return opt


def feed(model, size: int = 16, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    model.feed_data({'lq': torch.rand(2, 3, size, size, generator=g),
                     'gt': torch.rand(2, 3, 2 * size, 2 * size, generator=g)})


def conv_dtypes(model) -> list[torch.dtype]:
    """Records the output dtype of net_g's first convolution in each forward (autocast shows there)."""
    conv = next(m for m in model.net_g.modules() if isinstance(m, torch.nn.Conv2d))
    seen: list[torch.dtype] = []
    conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    return seen


def params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.net_g.parameters()])


# ------------------------------------------------------------------------------ registration
def test_authors_model_types_are_registered_subclasses_of_basicsr_models() -> None:
    assert MODEL_REGISTRY.get('ESRModel') is ESRModel and issubclass(ESRModel, SRModel)
    assert MODEL_REGISTRY.get('RealHATMSEModel') is RealHATMSEModel and issubclass(RealHATMSEModel, RealESRNetModel)
    assert MODEL_REGISTRY.get('RealHATGANModel') is RealHATGANModel and issubclass(RealHATGANModel, RealESRGANModel)


# ---------------------------------------------------------------------------------- ESRModel
@pytest.mark.parametrize('name', ['Adam', 'AdamW', 'Adamax', 'SGD', 'ASGD', 'RMSprop', 'Rprop'])
def test_the_authors_optimizers(name: str) -> None:
    model = build_model(esr_opt(optim_g={'type': name, 'lr': 1e-3}))
    assert type(model.optimizer_g) is getattr(torch.optim, name)


def test_unknown_optimizer_names_the_key() -> None:
    with pytest.raises(ValueError, match=r'train\.optim_g\.type.*Lion.*Adam, AdamW'):
        build_model(esr_opt(optim_g={'type': 'Lion', 'lr': 1e-3}))


@pytest.mark.parametrize('model_type', ['ESRModel', 'RealHATMSEModel'])
@pytest.mark.parametrize('keys', [('train', 'fft_opt'), ('train', 'mesa_opt'), ('tile',)])
def test_options_of_the_authors_code_we_lack_are_refused(model_type: str, keys: tuple[str, ...]) -> None:
    opt = esr_opt()
    opt['model_type'] = model_type
    node = opt
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = {'type': 'Anything', 'tile_size': 64}
    with pytest.raises(ValueError, match=re.escape('.'.join(keys)) + '.*refuses it'):
        build_model(opt)


def test_gradient_clip_bounds_the_step_and_halves_after_50k() -> None:
    # SGD with lr 1: the parameter change is exactly the (clipped) gradient
    model = build_model(esr_opt(optim_g={'type': 'SGD', 'lr': 1.0}, gradient_clip=1e-3))
    assert model.clip_norm(50_000) == 1e-3 and model.clip_norm(50_001) == 5e-4
    for current_iter, limit in ((1, 1e-3), (50_001, 5e-4)):
        feed(model, seed=current_iter)
        before = params(model)
        model.optimize_parameters(current_iter)
        assert (params(model) - before).norm().item() == pytest.approx(limit, rel=1e-3)


def test_reset_momentum_iter_clears_the_optimizer_state() -> None:
    model = build_model(esr_opt(reset_momentum_iter=2))
    feed(model)
    model.optimize_parameters(1)
    assert len(model.optimizer_g.state) > 0
    model.optimize_parameters(2)
    assert len(model.optimizer_g.state) == 0
    model.optimize_parameters(3)  # and Adam starts again from step 1
    assert all(s['step'].item() == 1 for s in model.optimizer_g.state.values())


def test_use_amp_on_the_cpu_means_bf16_without_scaler(caplog) -> None:
    opt = esr_opt()
    opt['use_amp'] = True
    log = logging.getLogger('basicsr')  # BasicSR's logger does not propagate once it is set up
    log.addHandler(caplog.handler)
    try:
        with caplog.at_level('INFO', logger='basicsr'):
            model = build_model(opt)
    finally:
        log.removeHandler(caplog.handler)
    assert model.amp.dtype is torch.bfloat16 and model.scaler is None
    assert sum('use_amp on the CPU: bf16' in r.getMessage() for r in caplog.records) == 1
    feed(model)
    before, dtypes = params(model), conv_dtypes(model)
    model.optimize_parameters(1)
    assert dtypes == [torch.bfloat16]  # the forward ran under autocast
    assert torch.isfinite(params(model)).all() and not torch.equal(params(model), before)


def test_fp16_with_a_gradient_scaler_on_the_cpu() -> None:
    opt = esr_opt(gradient_clip=0.1)
    opt.update(use_amp=True, amp_dtype='fp16')
    model = build_model(opt)
    assert model.amp.dtype is torch.float16 and isinstance(model.scaler, torch.amp.GradScaler)
    feed(model)
    dtypes = conv_dtypes(model)
    model.optimize_parameters(1)
    assert dtypes == [torch.float16] and model.scaler.get_scale() in (65536.0, 32768.0)


@pytest.mark.parametrize('key, value, match', [('amp_dtype', 'fp8', 'amp_dtype must be one of'),
                                               ('use_amp', 'yes', 'use_amp must be true or false')])
def test_malformed_amp_options_name_the_key(key: str, value: str, match: str) -> None:
    opt = esr_opt()
    opt.update(use_amp=True)
    opt[key] = value
    with pytest.raises(ValueError, match=match):
        build_model(opt)


@no_cuda
def test_a_gpu_option_without_cuda_is_a_clear_error() -> None:
    opt = esr_opt()
    opt.update(num_gpu=1, use_amp=True)
    with pytest.raises(ValueError, match='num_gpu: 1 but CUDA is not available'):
        build_model(opt)


def test_a_network_that_cannot_run_under_autocast_is_named(monkeypatch) -> None:
    opt = esr_opt()
    opt['use_amp'] = True
    model = build_model(opt)

    def forward(x):
        raise RuntimeError('"conv2d" not implemented for \'BFloat16\'')

    monkeypatch.setattr(model.net_g, 'forward', forward)
    feed(model)
    with pytest.raises(RuntimeError, match='use_amp: network_g ESC cannot train under bf16 autocast on cpu'):
        model.optimize_parameters(1)


def test_fp16_that_overflows_at_every_step_is_an_error() -> None:
    opt = esr_opt()
    opt.update(use_amp=True, amp_dtype='fp16')
    model = build_model(opt)
    model.scaler.load_state_dict(dict(model.scaler.state_dict(), scale=1.0))
    model.cri_pix = lambda out, gt: (out.float() * float('inf')).mean()  # stands for an fp16 overflow
    feed(model)
    with pytest.raises(FloatingPointError, match='amp_dtype: bf16'):
        model.optimize_parameters(1)


def test_scaler_state_is_saved_and_restored(tmp_path) -> None:
    opt = esr_opt(tmp_path)
    opt.update(use_amp=True, amp_dtype='fp16')
    model = build_model(opt)
    feed(model)
    model.optimize_parameters(1)
    model.scaler.load_state_dict(dict(model.scaler.state_dict(), scale=1024.0, _growth_tracker=7))
    model.save_training_state(epoch=0, current_iter=1)
    state = resume.load_training_state(str(tmp_path / '1.state'))  # the resume fix's weights_only loader
    assert state['scaler']['scale'] == 1024.0 and not list(tmp_path.glob('*.tmp'))
    fresh = build_model(opt)
    fresh.resume_training(state)
    assert fresh.scaler.state_dict() == model.scaler.state_dict()


def test_test_time_padding_to_the_window() -> None:
    model = build_model(esr_opt())
    net = model.net_g
    model.lq = torch.rand(1, 3, 10, 13)
    model.test()
    assert model.output.shape == (1, 3, 20, 26)
    padded = pad_to_multiple(model.lq, 8)
    assert padded.shape[-2:] == (16, 16) and torch.equal(padded[..., :10, :13], model.lq)
    with torch.no_grad():
        net.eval()
        assert torch.allclose(model.output, net(padded)[..., :20, :26], atol=1e-6)
    tiny = pad_to_multiple(torch.rand(1, 3, 2, 1), 8)  # smaller than the padding: reflect, then replicate
    assert tiny.shape[-2:] == (8, 8)


def test_use_ema_loads_params_ema_into_net_g(tmp_path) -> None:
    model = build_model(esr_opt())
    state = model.net_g.state_dict()
    ema = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in state.items()}
    torch.save({'params': state, 'params_ema': ema}, tmp_path / 'net.pth')
    opt = esr_opt()
    opt.update(is_train=False, use_ema=True)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'net.pth')
    loaded = build_model(opt).net_g.state_dict()
    assert all(torch.equal(loaded[k], ema[k]) for k in ema)


def test_perceptual_loss_is_basicsrs(monkeypatch) -> None:
    """perceptual_opt goes to BasicSR's PerceptualLoss (VGG weights replaced by random ones: no download)."""
    import torchvision

    import basicsr.archs.vgg_arch as vgg_arch
    monkeypatch.setattr(vgg_arch, 'vgg', types.SimpleNamespace(
        vgg19=lambda pretrained=False: torchvision.models.vgg19(weights=None)))
    model = build_model(esr_opt(pixel_opt=None, perceptual_opt={
        'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 1.0}, 'vgg_type': 'vgg19', 'use_input_norm': True,
        'perceptual_weight': 1.0, 'style_weight': 0, 'criterion': 'l1'}))
    feed(model)
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_percep'} and model.log_dict['l_percep'] > 0


# ------------------------------------------------------------------------- real-world models
REAL_DEGRADATIONS = dict(
    gt_usm=True, resize_prob=[0.2, 0.7, 0.1], resize_range=[0.15, 1.5], gaussian_noise_prob=0.5,
    noise_range=[1, 30], poisson_scale_range=[0.05, 3], gray_noise_prob=0.4, jpeg_range=[30, 95],
    second_blur_prob=0.8, resize_prob2=[0.3, 0.4, 0.3], resize_range2=[0.3, 1.2], gaussian_noise_prob2=0.5,
    noise_range2=[1, 25], poisson_scale_range2=[0.05, 2.5], gray_noise_prob2=0.4, jpeg_range2=[30, 95],
    gt_size=32, queue_size=4)


def real_opt(model_type: str) -> dict:
    opt = esr_opt()
    opt.update(REAL_DEGRADATIONS, model_type=model_type, scale=4, l1_gt_usm=True, percep_gt_usm=True,
               gan_gt_usm=False)
    opt['network_g'] = dict(type='ESCReal', upscaling_factor=4, **TINY_ESC)
    if model_type == 'RealHATGANModel':
        opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 8, 'skip_connection': True}
        opt['train'].update(optim_d={'type': 'Adam', 'lr': 1e-4}, net_d_iters=1, net_d_init_iters=0,
                            gan_opt={'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0,
                                     'fake_label_val': 0.0, 'loss_weight': 0.1})
    return opt


@pytest.mark.parametrize('model_type', ['RealHATMSEModel', 'RealHATGANModel'])
def test_real_world_models_build_train_and_pad_on_the_cpu(model_type: str) -> None:
    torch.manual_seed(0)
    model = build_model(real_opt(model_type))
    assert type(model).__name__ == model_type and next(model.usm_sharpener.buffers()).device.type == 'cpu'
    delta = torch.zeros(2, 21, 21)
    delta[:, 10, 10] = 1
    model.feed_data({'gt': torch.rand(2, 3, 128, 128), 'kernel1': delta, 'kernel2': delta, 'sinc_kernel': delta})
    assert model.lq.shape == (2, 3, 8, 8) and model.queue_lr.device.type == 'cpu'
    before = params(model)
    model.optimize_parameters(1)
    assert not torch.equal(params(model), before)
    expected = {'l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake'} if model_type == 'RealHATGANModel' else {'l_pix'}
    assert expected <= set(model.log_dict)
    model.lq = torch.rand(1, 3, 10, 13)
    model.test()
    assert model.output.shape == (1, 3, 40, 52)


# ---------------------------------------------------------------- pipelines (AMP, authors' form)
@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp('data'))


def authors_form_options(data, name: str, total_iter: int, **extra) -> dict:
    """tiny_train_options in the authors' form: ESRModel, attn_type Flex, use_amp, gradient_clip."""
    opt = tiny_train_options(data, name, total_iter=total_iter, checkpoint_freq=2)
    opt['model_type'] = 'ESRModel'
    opt['use_amp'] = True
    opt['network_g']['attn_type'] = 'Flex'
    opt['train']['gradient_clip'] = 0.5
    opt['dist_params'] = {'backend': 'gloo', 'port': 29529}
    opt.update(extra)
    return opt


def test_amp_scaler_state_survives_auto_resume(data, tmp_path, monkeypatch) -> None:
    """esc_basicsr.train in this process: fp16 + scaler on the CPU, interrupted after iteration 2's
    checkpoint, then ``--auto_resume``: the scaler continues from the saved state."""
    from esc_basicsr import train as esc_train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', sys.argv[:1])
    restored = []
    original = ESRModel.resume_training

    def resume_training(self, state):
        original(self, state)
        restored.append((copy.deepcopy(state.get('scaler')), self.scaler.state_dict()))

    monkeypatch.setattr(ESRModel, 'resume_training', resume_training)
    opt_file = write_options(authors_form_options(data, 'amp_resume', 2, amp_dtype='fp16'), tmp_path / 'train.yml')
    try:
        reset_basicsr_logger()
        esc_train.main(['-opt', str(opt_file), '--auto_resume'])
        saved = resume.load_training_state(str(tmp_path / 'experiments/amp_resume/training_states/2.state'))
        assert saved['scaler']['scale'] > 0
        reset_basicsr_logger()
        esc_train.main(['-opt', str(opt_file), '--auto_resume', '--force_yml', 'train:total_iter=3'])
    finally:
        reset_basicsr_logger()
    assert restored == [(saved['scaler'], saved['scaler'])]
    log = max((tmp_path / 'experiments/amp_resume').glob('train_*.log'), key=lambda p: p.stat().st_mtime).read_text()
    assert 'Resumed the gradient scaler' in log and 'fp16 autocast on cpu with a gradient scaler' in log


def test_authors_form_trains_resumes_and_tests_via_python_m_basicsr(data, tmp_path) -> None:
    """``python -m basicsr.train`` / ``basicsr.test`` (pip BasicSR: experiments/ and results/ under
    site-packages, removed afterwards) on an option file in the authors' form."""
    name = f'esc_basicsr_test_esr_{uuid.uuid4().hex[:8]}'
    root = Path(basicsr.__file__).resolve().parents[1]
    exp = root / 'experiments' / name
    opt_file = write_options(authors_form_options(data, name, 2), tmp_path / 'train.yml')
    test_opt = load_options('test_ESC_x2.yml')
    test_opt.update(name=name, model_type='ESRModel', num_gpu=0)
    test_opt['network_g'].update(TINY_ESC, attn_type='Flex')
    test_opt['datasets'] = {'test_1': dict(test_opt['datasets']['test_1'], dataroot_gt=str(data['set5'] / 'GTmod12'),
                                           dataroot_lq=str(data['set5'] / 'LRbicx2'))}
    test_opt['path']['pretrain_network_g'] = str(exp / 'models' / 'net_g_latest.pth')
    test_file = write_options(test_opt, tmp_path / 'test.yml')
    train = [sys.executable, '-m', 'basicsr.train', '-opt', str(opt_file), '--auto_resume']

    def run(cmd: list[str]) -> str:
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout + done.stderr

    try:
        first = run(train)
        assert 'Model [ESRModel] is created.' in first and 'use_amp on the CPU: bf16' in first
        assert 'Gradient clipping: max norm 0.5' in first and (exp / 'training_states' / '2.state').is_file()
        second = run(train + ['--force_yml', 'train:total_iter=3'])
        assert 'Resuming training from epoch: 0, iter: 2.' in second
        assert re.search(r'iter:\s+3, lr', second) and not re.search(r'iter:\s+[12], lr', second)
        tested = run([sys.executable, '-m', 'basicsr.test', '-opt', str(test_file)])
        assert re.search(r'# psnr: \d+\.\d+', tested)
        assert (root / 'results' / name / 'visualization' / 'Set5' / f'c_{name}.png').is_file()
    finally:
        for folder in ('experiments', 'results', 'tb_logger'):
            for path in root.glob(f'{folder}/{name}*'):
                shutil.rmtree(path, ignore_errors=True)
            if (root / folder).is_dir() and not any((root / folder).iterdir()):
                (root / folder).rmdir()
