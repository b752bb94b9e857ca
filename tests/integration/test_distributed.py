"""Multi-process training through torch.distributed (``--launcher pytorch``), on CPUs with gloo.

BasicSR 1.4.2 cannot start without CUDA (``torch.cuda.set_device(rank % 0)``, NCCL, DDP with CUDA
device ids); :mod:`esc_basicsr.integration.fixes.distributed` fixes that. The torchrun test runs two
processes of ``python -m esc_basicsr.train``, then resumes the run with ``--auto_resume``.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import basicsr.utils.dist_util as dist_util
from basicsr.models.base_model import BaseModel
from esc_basicsr.integration.fixes import _patching, distributed

from tests.integration.helpers import make_data, tiny_train_options, write_options

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason='checks the behaviour without CUDA')


def test_fix_is_installed_once() -> None:
    init, to_device = dist_util._init_dist_pytorch, BaseModel.model_to_device
    assert _patching.is_ours(init) and _patching.is_ours(to_device)
    assert 'set_device' in init.__wrapped__.__code__.co_names  # it replaced BasicSR's CUDA-only start-up
    distributed.install()
    assert dist_util._init_dist_pytorch is init and BaseModel.model_to_device is to_device


@no_cuda
def test_backend_choice_and_errors_without_cuda() -> None:
    assert distributed.resolve_backend(None) == 'gloo' and distributed.resolve_backend('auto') == 'gloo'
    assert distributed.resolve_backend('gloo') == 'gloo'
    assert 'nccl' not in distributed.available_backends()
    with pytest.raises(ValueError, match=r"dist_params\.backend: 'nccl' needs CUDA GPUs.*'gloo'"):
        distributed.resolve_backend('nccl')
    with pytest.raises(ValueError, match=r"dist_params\.backend: 'glo' does not exist on this machine"):
        distributed.resolve_backend('glo')


def test_backend_is_read_from_the_option_file(tmp_path: Path) -> None:
    opt_file = tmp_path / 'x.yml'
    opt_file.write_text('name: x\ndist_params:\n  backend: gloo\n  port: 29500\n')
    assert distributed.option_file_backend(['train.py', '-opt', str(opt_file), '--launcher', 'pytorch']) == 'gloo'
    opt_file.write_text('name: x\n')
    assert distributed.option_file_backend(['train.py', '-opt', str(opt_file)]) is None
    assert distributed.option_file_backend(['train.py']) is None


def test_cpu_model_is_wrapped_without_device_ids(tmp_path: Path) -> None:
    """BaseModel.model_to_device in a one-process gloo group: DDP on the CPU (BasicSR passed CUDA ids)."""
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    try:
        model = BaseModel({'num_gpu': 0, 'is_train': True, 'dist': True})
        net = model.model_to_device(torch.nn.Conv2d(3, 3, 3))
        assert isinstance(net, DistributedDataParallel) and net.device_ids is None
        assert next(net.parameters()).device.type == 'cpu'
        net(torch.rand(1, 3, 8, 8)).mean().backward()  # the gradient all-reduce runs on gloo
    finally:
        dist.destroy_process_group()


def test_the_process_group_is_destroyed_at_exit(tmp_path: Path, monkeypatch) -> None:
    """The start-up registers the destruction of its process group at exit: without it a rank could die with
    'terminate called without an active exception' after a complete run (the two-process test, 1 in 3)."""
    registered = []
    monkeypatch.setattr(distributed.atexit, 'register', registered.append)
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setattr(distributed, 'option_file_backend', lambda argv=None: 'gloo')
    dist_util._init_dist_pytorch(init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    try:
        assert registered == [distributed._destroy_process_group] and dist.is_initialized()
    finally:
        distributed._destroy_process_group()
    assert not dist.is_initialized()
    distributed._destroy_process_group()  # nothing left to destroy: no error


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp('data'))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(opt_file: Path, cwd: Path, *args: str) -> str:
    """``torchrun --nproc_per_node=2 -m esc_basicsr.train -opt X --launcher pytorch``; returns the output."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1', '--nproc_per_node=2',
           '--master_addr=127.0.0.1', f'--master_port={_free_port()}', '-m', 'esc_basicsr.train',
           '-opt', str(opt_file), '--launcher', 'pytorch', *args]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_two_process_training_finishes_and_resumes(data, tmp_path: Path) -> None:
    opt = tiny_train_options(data, 'ddp', total_iter=2, checkpoint_freq=2)
    opt['model_type'] = 'ESRModel'  # the authors' model type, with its gradient clipping
    opt['train']['gradient_clip'] = 0.5
    opt['network_g']['attn_type'] = 'sdpa'
    del opt['dist_params']  # automatic backend: gloo without CUDA, NCCL with
    opt_file = write_options(opt, tmp_path / 'train.yml')
    exp = tmp_path / 'experiments' / 'ddp'

    first = torchrun(opt_file, tmp_path, '--auto_resume')
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert f"torch.distributed backend '{backend}', world size 2." in first
    log = next(exp.glob('train_ddp_*.log')).read_text()  # rank 0 writes the log and checkpoints
    assert 'World size (gpu number): 2' in log and re.search(r'\n\s*dist: True', log)
    assert re.search(r'iter:\s+2, lr', log) and 'Validation Set5' in log
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['2.state']
    assert len(list(tmp_path.glob('experiments/ddp*'))) == 1  # rank 1 made no folders of its own

    torchrun(opt_file, tmp_path, '--auto_resume', '--force_yml', 'train:total_iter=4')
    log = max(exp.glob('train_ddp_*.log'), key=os.path.getmtime).read_text()
    assert 'Resuming training from epoch: 0, iter: 2.' in log
    assert [int(i) for i in re.findall(r'iter:\s+(\d+), lr', log)] == [3, 4]
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['2.state', '4.state']
    assert not list(tmp_path.glob('experiments/*_archived_*'))
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
