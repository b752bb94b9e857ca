"""Issue 22, BasicSR's side: faults during training lose nothing and user errors are one line.

Through BasicSR's own entry points (``python -m basicsr.train``, run as ``__main__``; tiny ESC, a few
iterations, CPU): a second training with the same experiment name while the first runs, a full disk while
saving, SIGKILL while re-saving a model, malformed option files and a corrupt ``resume_state``. The fixes
are in ``esc_basicsr/integration/fixes/`` (``experiment_folders``, ``save_network``,
``save_training_state``, ``resume``, ``option_checks``)."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import basicsr
import pytest
import torch
import yaml

from tests.integration.helpers import make_data, remove_experiment, tiny_train_options, write_options

ROOT = Path(basicsr.__file__).resolve().parents[1]  # BasicSR's root_path for `python -m basicsr.train`


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp('data'))


@pytest.fixture()
def experiment():
    """A unique experiment name for ``python -m basicsr.train`` (folders under BasicSR's root, removed after)."""
    name = f'esc_basicsr_test_faults_{uuid.uuid4().hex[:8]}'
    yield name, ROOT / 'experiments' / name
    remove_experiment(ROOT, name)


def basicsr_train(opt_file: Path, *args: str, cwd: Path, driver: str = '', file_limit: int | None = None,
                  wait: bool = True, timeout: float = 600):
    """``python -m basicsr.train -opt opt_file args`` (or ``driver`` code run before it, then BasicSR's
    train.py as ``__main__`` exactly as ``-m`` runs it); ``file_limit``: no file may grow beyond it (a full disk)."""
    argv = ['-opt', str(opt_file), *args]
    if driver:
        code = textwrap.dedent(driver) + "\nimport runpy, sys\nsys.argv[0] = 'basicsr/train.py'\n" \
            "runpy.run_module('basicsr.train', run_name='__main__', alter_sys=True)\n"
        cmd = [sys.executable, '-c', code, *argv]
    else:
        cmd = [sys.executable, '-m', 'basicsr.train', *argv]

    def limit() -> None:
        if file_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=limit)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, preexec_fn=limit, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and 'Warning' not in line
            and not line.startswith('  warnings.warn')]


def log_of(exp: Path) -> str:
    return '\n'.join(p.read_text() for p in sorted(exp.glob('train_*.log'), key=os.path.getmtime))


# ---- the same experiment name twice -----------------------------------------------------------------------------

def test_same_experiment_name_while_the_first_runs_is_refused(data, tmp_path, experiment):
    name, exp = experiment
    opt = tiny_train_options(data, name, total_iter=10 ** 6, checkpoint_freq=10 ** 6)
    opt_file = write_options(opt, tmp_path / 'train.yml')
    first = basicsr_train(opt_file, cwd=tmp_path, wait=False)
    try:
        deadline = time.time() + 300
        while not list(exp.glob('train_*.log')) and time.time() < deadline and first.poll() is None:
            time.sleep(0.5)
        assert first.poll() is None, first.communicate()[1][-3000:]
        second = basicsr_train(opt_file, '--force_yml', 'train:total_iter=2', cwd=tmp_path, timeout=300)
        assert second.returncode == 2, second.stderr[-3000:]
        lines = error_lines(second.stderr)
        assert len(lines) == 1 and lines[0].startswith('error: ') and name in lines[0] and 'running' in lines[0]
        assert not list(ROOT.glob(f'experiments/{name}_archived_*'))  # the live folder was not renamed
        assert first.poll() is None  # and the first run goes on
    finally:
        first.kill()
        first.communicate()
    # once the first run is gone, BasicSR's own behaviour: the old folder is archived, nothing lost
    third = basicsr_train(opt_file, '--force_yml', 'train:total_iter=1', 'logger:save_checkpoint_freq=1',
                          cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert len(list(ROOT.glob(f'experiments/{name}_archived_*'))) == 1


# ---- a full disk while saving, SIGKILL while re-saving -----------------------------------------------------------

def test_full_disk_is_an_error_and_resume_picks_the_last_good_pair(data, tmp_path, experiment):
    name, exp = experiment
    opt_file = write_options(tiny_train_options(data, name, total_iter=2, checkpoint_freq=2), tmp_path / 'train.yml')
    assert basicsr_train(opt_file, cwd=tmp_path).returncode == 0
    model_size = (exp / 'models' / 'net_g_2.pth').stat().st_size
    # resume to iteration 4 on a "full disk": no file may grow beyond half a model
    full = basicsr_train(opt_file, '--auto_resume', '--force_yml', 'train:total_iter=4', cwd=tmp_path,
                         file_limit=model_size // 2)
    assert full.returncode != 0, full.stderr[-3000:]
    assert 'net_g_4.pth' in full.stderr and 'File too large' in full.stderr  # the path and the reason
    assert 'Traceback' not in full.stderr
    assert sorted(p.name for p in (exp / 'models').iterdir()) == ['net_g_2.pth', 'net_g_latest.pth']  # no 0-byte
    # or partial file (net_g_latest.pth is the first run's, unchanged)
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['2.state']
    # room made: --auto_resume continues from the last good pair
    again = basicsr_train(opt_file, '--auto_resume', '--force_yml', 'train:total_iter=4', cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'Resuming training from epoch: 0, iter: 2.' in log_of(exp)
    assert (exp / 'training_states' / '4.state').is_file()


KILL_WHILE_SAVING = """
    import builtins, io, os, signal, torch
    real_save, real_open = torch.save, builtins.open

    def killed_half_way(path, data):
        with real_open(path, 'wb') as out:
            out.write(data[:len(data) // 2])
            out.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def save(obj, f, *args, **kwargs):  # torch.save straight to net_g_4.pth (BasicSR's own writer)
        if isinstance(f, (str, os.PathLike)) and 'net_g_4' in os.fspath(f):
            buffer = io.BytesIO()
            real_save(obj, buffer)
            killed_half_way(f, buffer.getvalue())
        return real_save(obj, f, *args, **kwargs)

    class KilledWhileWriting:  # open(<a name of net_g_4>, 'wb').write(data): half of it, then SIGKILL
        def __init__(self, path):
            self.path = path
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return False
        def write(self, data):
            killed_half_way(self.path, data)

    def open_(file, mode='r', *args, **kwargs):
        if 'w' in mode and isinstance(file, (str, os.PathLike)) and 'net_g_4' in os.fspath(file):
            return KilledWhileWriting(file)
        return real_open(file, mode, *args, **kwargs)

    torch.save, builtins.open = save, open_
"""


def test_sigkill_while_re_saving_keeps_the_old_model_and_resume_falls_back(data, tmp_path, experiment):
    name, exp = experiment
    opt_file = write_options(tiny_train_options(data, name, total_iter=4, checkpoint_freq=2), tmp_path / 'train.yml')
    assert basicsr_train(opt_file, cwd=tmp_path).returncode == 0
    good = (exp / 'models' / 'net_g_4.pth').read_bytes()
    # re-train iterations 3-4 from 2.state and get killed while net_g_4.pth is re-saved
    killed = basicsr_train(opt_file, '--force_yml', f'path:resume_state={exp / "training_states" / "2.state"}',
                           cwd=tmp_path, driver=KILL_WHILE_SAVING)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (exp / 'models' / 'net_g_4.pth').read_bytes() == good  # the complete model is still there
    torch.load(exp / 'models' / 'net_g_4.pth', weights_only=True)

    # a model truncated by BasicSR's own (non-atomic) writer beside a complete 4.state: resume falls back to 2
    (exp / 'models' / 'net_g_4.pth').write_bytes(good[:len(good) // 2])
    resumed = basicsr_train(opt_file, '--auto_resume', '--force_yml', 'train:total_iter=6', cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'net_g_4.pth' in resumed.stdout + resumed.stderr  # said why 4.state was passed over
    assert 'Resuming training from epoch: 0, iter: 2.' in log_of(exp)
    assert (exp / 'training_states' / '6.state').is_file()
    assert not [p.name for p in (exp / 'models').iterdir() if p.name.startswith('.')]  # the killed run's temporary


# ---- user errors: one line, exit code 2 --------------------------------------------------------------------------

def malformed(data, name: str) -> dict[str, tuple[str, str]]:
    """case -> (option file text, what the one error line must say)."""
    good = tiny_train_options(data, name, total_iter=1, checkpoint_freq=1)

    def without(*keys: str) -> str:
        opt = json.loads(json.dumps(good))
        holder = opt
        for k in keys[:-1]:
            holder = holder[k]
        del holder[keys[-1]]
        return yaml.safe_dump(opt)

    def with_(value, *keys: str) -> str:
        opt = json.loads(json.dumps(good))
        holder = opt
        for k in keys[:-1]:
            holder = holder[k]
        holder[keys[-1]] = value
        return yaml.safe_dump(opt)

    return {
        'invalid yaml': ('name: x\nnetwork_g:\n  type: ESC\n   dim: 16\n', 'not valid YAML'),
        'not a mapping': ('just some text\n', 'not a BasicSR option file'),
        'missing name': (without('name'), "'name'"),
        'missing num_gpu': (without('num_gpu'), "'num_gpu'"),
        'missing datasets': (without('datasets'), "'datasets'"),
        'unknown network type': (with_('ESCC', 'network_g', 'type'), "'ESCC'"),
        'wrong argument type': (with_('32', 'network_g', 'dim'), "'dim'"),
        'unknown model type': (with_('SRModle', 'model_type'), "'SRModle'"),
        'unknown dataset type': (with_('PairedImageDatset', 'datasets', 'train', 'type'), "'PairedImageDatset'"),
        'total_iter a string': (with_('many', 'train', 'total_iter'), 'total_iter'),
        'missing logger': (without('logger'), "'logger'"),
        'unknown loss type': (with_('L1Los', 'train', 'pixel_opt', 'type'), "'L1Los'"),
        'missing network_g': (without('network_g'), "'network_g'"),  # issue 27: were tracebacks
        'lr a string': (with_('fast', 'train', 'optim_g', 'lr'), 'train.optim_g.lr'),
        'betas not a pair': (with_(0.9, 'train', 'optim_g', 'betas'), 'train.optim_g'),
        'unknown optimizer argument': (with_(0.1, 'train', 'optim_g', 'momentun'), "'momentun'"),
        'unknown optimizer type': (with_('Adamm', 'train', 'optim_g', 'type'), "'Adamm'"),
        'unknown scheduler type': (with_('StepLR', 'train', 'scheduler', 'type'), "'StepLR'"),
    }


RUN_EACH = """
    import contextlib, io, json, runpy, sys, traceback
    results = {}
    for case, path in json.loads(sys.argv[1]).items():
        sys.argv = ['basicsr/train.py', '-opt', path]
        err, out = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                runpy.run_module('basicsr.train', run_name='__main__', alter_sys=True)
            except SystemExit as exc:
                code = exc.code
            except BaseException:
                code = 'traceback'
                traceback.print_exc()
        results[case] = [code, err.getvalue()]
    print(json.dumps(results))
"""


def test_malformed_option_files_are_one_line_and_exit_2(data, tmp_path, experiment):
    name, exp = experiment
    cases = malformed(data, name)
    files = {}
    for i, (case, (text, _)) in enumerate(cases.items()):
        (tmp_path / f'{i}.yml').write_text(text)
        files[case] = str(tmp_path / f'{i}.yml')
    res = subprocess.run([sys.executable, '-c', textwrap.dedent(RUN_EACH), json.dumps(files)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads(res.stdout.strip().splitlines()[-1])
    bad = {}
    for case, (code, err) in results.items():
        lines = error_lines(err)
        if not (code == 2 and len(lines) == 1 and lines[0].startswith('error: ') and cases[case][1] in lines[0]):
            bad[case] = (code, err[-600:])
    assert not bad, bad
    assert not exp.exists() and not (tmp_path / 'experiments').exists()  # refused before any folder was made


def test_command_line_entries_exit_2_with_one_line(data, tmp_path, experiment):
    text, message = malformed(data, experiment[0])['unknown network type']
    (tmp_path / 'bad.yml').write_text(text)
    for module in ('basicsr.train', 'esc_basicsr.train'):
        res = subprocess.run([sys.executable, '-m', module, '-opt', str(tmp_path / 'bad.yml')], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        lines = error_lines(res.stderr)
        assert res.returncode == 2 and len(lines) == 1 and message in lines[0], (module, res.stderr[-2000:])


def test_corrupt_resume_state_is_one_line_and_exit_2(data, tmp_path, experiment):
    name, exp = experiment
    corrupt = tmp_path / '7.state'
    corrupt.write_bytes(b'PK\x03\x04 not really a torch file')
    opt = tiny_train_options(data, name, total_iter=1, checkpoint_freq=1)
    opt['path']['resume_state'] = str(corrupt)
    opt_file = write_options(opt, tmp_path / 'train.yml')
    res = basicsr_train(opt_file, cwd=tmp_path)
    lines = error_lines(res.stderr)
    assert res.returncode == 2 and len(lines) == 1 and '7.state' in lines[0], res.stderr[-3000:]
    torch.save({'iter': 'x'}, corrupt)  # loads, but is not a training state
    res = basicsr_train(opt_file, cwd=tmp_path)
    lines = error_lines(res.stderr)
    assert res.returncode == 2 and len(lines) == 1 and '7.state' in lines[0], res.stderr[-3000:]
    assert not exp.exists()


# ---- test option files: the val section BasicSR reads (issue 27) -----------------------------------------------

def tiny_test_options(data, name: str, weights: Path) -> dict:
    """options/test_ESC_x2.yml made CPU-sized: the tiny ESC, only the small Set5 of ``data``."""
    from tests.integration.helpers import TINY_ESC, load_options

    opt = load_options('test_ESC_x2.yml')
    opt.update(name=name, num_gpu=0)
    set5 = dict(opt['datasets']['test_1'], dataroot_gt=str(data['set5'] / 'GTmod12'),
                dataroot_lq=str(data['set5'] / 'LRbicx2'))
    opt['datasets'] = {'test_1': set5}
    opt['network_g'].update(TINY_ESC)
    opt['path']['pretrain_network_g'] = str(weights)
    return opt


@pytest.fixture()
def tiny_weights(tmp_path) -> Path:
    """Weights of the tiny network_g of :func:`tiny_test_options`."""
    from esc_basicsr.archs import ESC

    net = tiny_test_options({'set5': tmp_path}, 'x', tmp_path)['network_g']
    path = tmp_path / 'w.pth'
    torch.save({'params_ema': ESC(**{k: v for k, v in net.items() if k != 'type'}).state_dict()}, path)
    return path


def test_missing_val_suffix_of_a_test_file_names_images_after_the_experiment(data, tmp_path, tiny_weights):
    """BasicSR 1.4.2 reads val.suffix only after a whole test set ran (KeyError: 'suffix'); a missing
    suffix now means what suffix: ~ means in BasicSR: <image>_<name>.png."""
    opt = tiny_test_options(data, 'tiny_test', tiny_weights)
    del opt['val']['suffix']
    assert opt['val']['save_img'] is True
    res = subprocess.run([sys.executable, '-m', 'esc_basicsr.test', '-opt',
                          str(write_options(opt, tmp_path / 'test.yml'))],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / 'results' / 'tiny_test' / 'visualization' / 'Set5').iterdir()) == [
        'c_tiny_test.png', 'd_tiny_test.png']


@pytest.mark.parametrize('module', ['basicsr.test', 'esc_basicsr.test'])
def test_test_file_without_val_save_img_is_refused_before_any_work(data, tmp_path, tiny_weights, module):
    opt = tiny_test_options(data, f'esc_basicsr_test_faults_{uuid.uuid4().hex[:8]}', tiny_weights)
    del opt['val']['save_img']
    try:
        res = subprocess.run([sys.executable, '-m', module, '-opt', str(write_options(opt, tmp_path / 'test.yml'))],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
        lines = error_lines(res.stderr)
        assert res.returncode == 2 and len(lines) == 1 and 'missing val.save_img' in lines[0], res.stderr[-3000:]
        assert not (tmp_path / 'results').exists() and not (ROOT / 'results' / opt['name']).exists()
    finally:  # python -m basicsr.test roots results/ at BasicSR's install folder
        shutil.rmtree(ROOT / 'results' / opt['name'], ignore_errors=True)


@pytest.mark.parametrize('module', ['basicsr.train', 'esc_basicsr.train'])
def test_bad_environment_override_is_refused_before_training(data, tmp_path, experiment, module):
    """Issue 27: ESC_BASICSR_ATTN=bogus was an error at the first forward, after the experiment folder was made."""
    name, exp = experiment
    opt_file = write_options(tiny_train_options(data, name, total_iter=1, checkpoint_freq=1), tmp_path / 'train.yml')
    res = subprocess.run([sys.executable, '-m', module, '-opt', str(opt_file)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, ESC_BASICSR_ATTN='bogus'))
    lines = error_lines(res.stderr)
    assert res.returncode == 2 and lines == [
        "error: ESC_BASICSR_ATTN='bogus': expected one of auto, naive, sdpa, flex"], res.stderr[-3000:]
    assert not exp.exists() and not (tmp_path / 'experiments').exists()
