"""Resume after an interruption (``--auto_resume``) and the clear errors for broken data.

BasicSR 1.4.2 would restart from iteration 0 (``python -m basicsr.train``: wrong folder), crash
without CUDA, or reject the state under ``weights_only=True``; see ``esc_basicsr/integration/fixes/``.
"""
from __future__ import annotations

import copy
import os
import pickle
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import basicsr
import lmdb
import pytest
import torch

from esc_basicsr.integration import fixes
from esc_basicsr.integration.fixes import lmdb_values, option_checks, resume

from tests.integration.helpers import make_data, remove_experiment, reset_basicsr_logger, tiny_train_options, \
    write_options


class SimulatedCrash(Exception):
    """Stands for a killed process (a KeyboardInterrupt would stop pytest itself)."""


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp('data'))


@pytest.fixture()
def in_process(tmp_path, monkeypatch):
    """Run esc_basicsr.train in this process from tmp_path; yields the run function."""
    from esc_basicsr import train as esc_train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', sys.argv[:1])

    def run(opt_file: Path, *args: str) -> None:
        reset_basicsr_logger()
        esc_train.main(['-opt', str(opt_file), *args])

    yield run
    reset_basicsr_logger()


def _capture_models(monkeypatch, crash_at: int | None = None) -> list:
    """Wrap basicsr.train.build_model: record each model and a snapshot right after ``resume_training``;
    optionally crash in iteration ``crash_at`` (after earlier checkpoints were written)."""
    import basicsr.train as basicsr_train

    models = []
    build = getattr(basicsr_train.build_model, 'original', basicsr_train.build_model)

    def build_model(opt):
        model = build(opt)
        models.append(model)
        resume, optimize = model.resume_training, model.optimize_parameters

        def resume_training(state):
            resume(state)
            model.after_resume = dict(net_g=copy.deepcopy(model.net_g.state_dict()),
                                      net_g_ema=copy.deepcopy(model.net_g_ema.state_dict()),
                                      optimizer=copy.deepcopy(model.optimizers[0].state_dict()),
                                      scheduler=copy.deepcopy(model.schedulers[0].state_dict()))

        def optimize_parameters(current_iter):
            if current_iter == crash_at:
                raise SimulatedCrash(f'interrupted in iteration {current_iter}')
            optimize(current_iter)

        model.resume_training, model.optimize_parameters = resume_training, optimize_parameters
        return model

    build_model.original = build
    monkeypatch.setattr(basicsr_train, 'build_model', build_model)
    return models


def _assert_state_equal(a, b) -> None:
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    elif isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_state_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_state_equal(x, y)
    else:
        assert a == b


def test_interrupted_run_resumes_with_everything_restored(data, tmp_path, in_process, monkeypatch, caplog):
    """esc_basicsr.train, CPU: interrupted in iteration 3 after the checkpoint of iteration 2, then
    ``--auto_resume`` continues at iteration 3 with net_g, EMA, optimizer and scheduler as saved."""
    opt_file = write_options(tiny_train_options(data, 'resume_in_process', total_iter=5, checkpoint_freq=2),
                             tmp_path / 'train.yml')
    _capture_models(monkeypatch, crash_at=3)
    with pytest.raises(SimulatedCrash):
        in_process(opt_file, '--auto_resume')
    exp = tmp_path / 'experiments' / 'resume_in_process'
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['2.state']

    models = _capture_models(monkeypatch)
    in_process(opt_file, '--auto_resume')
    assert not list((tmp_path / 'experiments').glob('*_archived_*'))  # continued, not restarted
    after = models[0].after_resume
    saved_net = torch.load(exp / 'models' / 'net_g_2.pth', weights_only=True)
    saved_state = resume.load_training_state(str(exp / 'training_states' / '2.state'))
    assert saved_state['iter'] == 2
    _assert_state_equal(after['net_g'], saved_net['params'])
    _assert_state_equal(after['net_g_ema'], saved_net['params_ema'])  # EMA restored, not re-copied from net_g
    assert not all(torch.equal(after['net_g'][k], after['net_g_ema'][k]) for k in after['net_g'])
    _assert_state_equal(after['optimizer'], saved_state['optimizers'][0])
    assert after['optimizer']['state'][0]['step'] == 2
    _assert_state_equal(after['scheduler'], saved_state['schedulers'][0])
    log = max(exp.glob('train_resume_in_process_*.log'), key=os.path.getmtime).read_text()
    assert 'Resuming training from epoch: 0, iter: 2.' in log
    iters = [int(i) for i in re.findall(r'iter:\s+(\d+), lr', log)]
    assert iters == [3, 4, 5]  # no iteration lost or repeated
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['2.state', '4.state']


def test_python_m_basicsr_train_auto_resume_subprocess(data, tmp_path):
    """The documented command, with a pip-installed BasicSR (experiments/ under site-packages):
    a second ``python -m basicsr.train ... --auto_resume`` from the same directory continues."""
    name = f'esc_basicsr_test_resume_{uuid.uuid4().hex[:8]}'
    root = Path(basicsr.__file__).resolve().parents[1]  # BasicSR's root_path for `python -m basicsr.train`
    exp = root / 'experiments' / name
    opt_file = write_options(tiny_train_options(data, name, total_iter=2, checkpoint_freq=2), tmp_path / 'train.yml')
    cmd = [sys.executable, '-m', 'basicsr.train', '-opt', str(opt_file), '--auto_resume']
    try:
        first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert first.returncode == 0, first.stderr[-3000:]
        assert (exp / 'training_states' / '2.state').is_file()
        second = subprocess.run(cmd + ['--force_yml', 'train:total_iter=4'], cwd=tmp_path, capture_output=True,
                                text=True)
        assert second.returncode == 0, second.stderr[-3000:]
        assert 'Resuming training from epoch: 0, iter: 2.' in second.stdout + second.stderr
        assert (exp / 'training_states' / '4.state').is_file()
        assert not list(root.glob(f'experiments/{name}_archived_*'))
    finally:
        remove_experiment(root, name)


def _experiment_with_states(data, tmp_path, in_process, name: str) -> tuple[dict, Path]:
    opt_file = write_options(tiny_train_options(data, name, total_iter=4, checkpoint_freq=2), tmp_path / 'train.yml')
    in_process(opt_file)
    exp = tmp_path / 'experiments' / name
    opt = {'name': name, 'num_gpu': 0, 'auto_resume': True, 'is_train': True, 'network_g': {'type': 'ESC'},
           'path': {'training_states': str(exp / 'training_states'), 'models': str(exp / 'models'),
                    'resume_state': None}}
    return opt, exp


def test_resume_loader_fallback_device_and_original_bug(data, tmp_path, in_process, monkeypatch):
    opt, exp = _experiment_with_states(data, tmp_path, in_process, 'resume_unit')
    import basicsr.train as basicsr_train

    # BasicSR's own loader fails here: CUDA-only map_location (RuntimeError without CUDA) or, with CUDA,
    # weights_only=True rejecting the Counter (UnpicklingError)
    original = basicsr_train.load_resume_state.__wrapped__
    with pytest.raises((RuntimeError, pickle.UnpicklingError)):
        original(copy.deepcopy(opt))

    # newest state truncated (killed while saving): fall back to the previous one, with a message
    state4 = exp / 'training_states' / '4.state'
    state4.write_bytes(state4.read_bytes()[:100])
    fixed_opt = copy.deepcopy(opt)
    state = basicsr_train.load_resume_state(fixed_opt)
    assert state['iter'] == 2 and fixed_opt['path']['resume_state'].endswith('2.state')
    assert fixed_opt['path']['pretrain_network_g'].endswith('net_g_2.pth')  # check_resume ran
    # an explicit, unreadable resume_state is an error naming it
    explicit = dict(copy.deepcopy(opt), auto_resume=False)
    explicit['path']['resume_state'] = str(state4)
    with pytest.raises(RuntimeError, match='4.state'):
        basicsr_train.load_resume_state(explicit)

    # the state goes to the current CUDA device when there is one (and num_gpu != 0), else the CPU
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    assert resume.resume_map_location({'num_gpu': 1}) == torch.device('cuda', 0)
    assert resume.resume_map_location({'num_gpu': 0}) == torch.device('cpu')


def test_install_is_idempotent_and_reaches_the_pipelines():
    import basicsr.test as basicsr_test
    import basicsr.train as basicsr_train
    import basicsr.utils.options as options
    from basicsr.models.base_model import BaseModel
    from basicsr.utils.file_client import LmdbBackend

    before = (options.parse_options, basicsr_train.load_resume_state, LmdbBackend.get, BaseModel.get_optimizer)
    fixes.install()
    fixes.install()
    after = (options.parse_options, basicsr_train.load_resume_state, LmdbBackend.get, BaseModel.get_optimizer)
    assert before == after and all(getattr(f, '_esc_basicsr_fix', False) for f in after)
    assert basicsr_train.parse_options is options.parse_options is basicsr_test.parse_options


def test_missing_dataset_path_fails_early_with_its_name(data, tmp_path, in_process):
    opt = tiny_train_options(data, 'missing_data', total_iter=1, checkpoint_freq=1)
    opt['datasets']['train']['dataroot_lq'] = str(tmp_path / 'nowhere_X2_sub.lmdb')
    with pytest.raises(option_checks.DatasetPathError, match=r'datasets\.train\.dataroot_lq.*nowhere_X2_sub\.lmdb'):
        in_process(write_options(opt, tmp_path / 'train.yml'))
    assert not (tmp_path / 'experiments').exists()  # nothing created or archived

    opt = tiny_train_options(data, 'missing_pretrain', total_iter=1, checkpoint_freq=1)
    opt['path']['pretrain_network_g'] = 'experiments/ESC_x2/models/net_g_latest.pth'
    with pytest.raises(option_checks.PretrainPathError, match='pretrain_network_g'):
        in_process(write_options(opt, tmp_path / 'train.yml'))


def test_corrupt_or_missing_lmdb_entry_is_named(data, tmp_path):
    from basicsr.data import build_dataset

    lq = tmp_path / 'lq.lmdb'
    shutil.copytree(data['lq2'], lq)
    env = lmdb.open(str(lq), map_size=1 << 26)
    with env.begin(write=True) as txn:
        good = txn.get(b'a_s002')
        txn.put(b'a_s002', good[:len(good) // 2])  # truncated PNG
        txn.delete(b'a_s003')
    env.close()
    opt = dict(name='DIV2K', type='PairedImageDataset', dataroot_gt=str(data['gt']), dataroot_lq=str(lq),
               io_backend={'type': 'lmdb'}, gt_size=32, use_hflip=True, use_rot=True, phase='train', scale=2)
    dataset = build_dataset(opt)
    keys = [p['lq_path'] for p in dataset.paths]
    assert dataset[keys.index('a_s001')]['lq'].shape == (3, 16, 16)
    with pytest.raises(lmdb_values.CorruptImageError, match=r"lq\.lmdb: the entry for key 'a_s002' is corrupt"):
        dataset[keys.index('a_s002')]
    with pytest.raises(KeyError, match=r"lq\.lmdb: no entry for key 'a_s003'"):
        dataset[keys.index('a_s003')]


def test_authors_model_options_are_not_ignored_by_other_models(data, tmp_path, in_process):
    opt = tiny_train_options(data, 'amp_on_srmodel', total_iter=1, checkpoint_freq=1)
    opt['use_amp'] = True  # model_type is SRModel, which has no mixed precision
    with pytest.raises(ValueError, match=r'use_amp is read by model_type ESRModel.*SRModel would ignore it'):
        in_process(write_options(opt, tmp_path / 'train.yml'))
    assert not (tmp_path / 'experiments').exists()
    opt['use_amp'], opt['train']['gradient_clip'] = False, 0.5
    with pytest.raises(ValueError, match=r'train\.gradient_clip'):
        in_process(write_options(opt, tmp_path / 'train.yml'))
    option_checks.check_model_options(dict(opt, model_type='ESRModel'))  # the model that reads them


def test_a_damaged_model_is_passed_over_like_a_truncated_one(tmp_path):
    """Issue 27 follow-up: a model whose data fails its zip CRC-32 (a bit flipped on disk) loaded as wrong
    weights without a word; resuming now treats its pair as unusable, as it does a truncated one."""
    import struct
    import zipfile

    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    for it in (2, 4):
        torch.save({'iter': it, 'epoch': 0, 'optimizers': [], 'schedulers': []}, states / f'{it}.state')
        torch.save({'params': {'w': torch.randn(64, 64)}}, models / f'net_g_{it}.pth')
    model4 = models / 'net_g_4.pth'
    info = next(i for i in zipfile.ZipFile(model4).infolist() if '/data/' in i.filename)
    data = bytearray(model4.read_bytes())
    name_len, extra_len = struct.unpack('<HH', data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + 10] ^= 0x40
    model4.write_bytes(bytes(data))
    assert torch.load(model4, weights_only=True)  # torch itself loads it
    opt = {'network_g': {'type': 'ESC'}, 'path': {'models': str(models)}}
    with pytest.raises(resume.ResumeStateError, match='CRC mismatch'):
        resume.checked_state(str(states / '4.state'), opt, 'cpu')
    assert resume.checked_state(str(states / '2.state'), opt, 'cpu')['iter'] == 2
