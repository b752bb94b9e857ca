"""The option checker installed into BasicSR's ``parse_options`` (esc_basicsr.integration.fixes.option_checks):
GPU option files run on a CPU with one line saying what changed, every unreadable dataset is reported
at once (exit code 2, no traceback, on the command line), and the test files' sets that are present
can be run alone. The command-line runs use the repository's option files themselves, unchanged;
only dataset paths, the number of iterations and (for memory) the batch are set with BasicSR's
``--force_yml``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
import yaml
from basicsr.utils.options import ordered_yaml
from skimage import data as skdata

from esc_basicsr import prepare
from esc_basicsr.integration.fixes import distributed, option_checks

REPO = Path(__file__).resolve().parents[2]
TRAIN_X2 = REPO / 'options' / 'train_ESC_x2.yml'
TEST_X2 = REPO / 'options' / 'test_ESC_x2.yml'
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason='checks the behaviour without CUDA')
CPU_LINE = ('esc_basicsr: no CUDA on this machine, so {} runs on the CPU: datasets.train.prefetch_mode cuda -> ~, '
            'datasets.train.pin_memory true -> false')


def load(path: Path) -> dict:
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def bgr(img):
    return cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    """``datasets/DIV2K`` (x2 LMDBs with 128-pixel GT crops, the file's gt_size) and ``datasets/Set5``."""
    root = tmp_path_factory.mktemp('data')
    (root / 'hr').mkdir()
    (root / 'set5_hr').mkdir()
    cv2.imwrite(str(root / 'hr' / 'a.png'), bgr(skdata.astronaut())[:256, :256])
    cv2.imwrite(str(root / 'set5_hr' / 'c.png'), bgr(skdata.chelsea())[:36, :48])
    cv2.imwrite(str(root / 'set5_hr' / 'd.png'), skdata.camera()[200:248, 200:236])
    out = root / 'datasets'
    assert prepare.main(['div2k', '--hr', str(root / 'hr'), '--out', str(out / 'DIV2K'), '--name', 'DIV2K_train',
                         '--scales', '2', '--crop-size', '128', '--step', '128', '--workers', '1']) == 0
    assert prepare.main(['benchmark', '--hr', str(root / 'set5_hr'), '--out', str(out / 'Set5'), '--scales', '2',
                         '--workers', '1']) == 0
    return out


def run(module: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, **(env or {})))


def train_paths(data: Path) -> list[str]:
    return [f'datasets:train:dataroot_gt={data}/DIV2K/DIV2K_train_HR_sub.lmdb',
            f'datasets:train:dataroot_lq={data}/DIV2K/DIV2K_train_LR_bicubic_X2_sub.lmdb',
            f'datasets:val:dataroot_gt={data}/Set5/GTmod12', f'datasets:val:dataroot_lq={data}/Set5/LRbicx2']


def test_cpu_equivalents_of_gpu_settings() -> None:
    opt = load(TRAIN_X2)
    assert opt['datasets']['train']['prefetch_mode'] == 'cuda' and opt['num_gpu'] == 'auto'
    assert option_checks.adapt_to_cpu(load(TRAIN_X2), cuda=True) == []  # a GPU machine: nothing changes
    opt['num_gpu'] = 1  # the authors' files say 1 or 4
    assert option_checks.adapt_to_cpu(opt, cuda=False) == [
        'num_gpu 1 -> 0', 'datasets.train.prefetch_mode cuda -> ~', 'datasets.train.pin_memory true -> false']
    assert opt['num_gpu'] == 0 and opt['datasets']['train']['prefetch_mode'] is None
    assert opt['datasets']['train']['pin_memory'] is False
    assert option_checks.adapt_to_cpu(opt, cuda=False) == []  # already CPU settings

    real = load(REPO / 'options' / 'train_ESC_Real_x4_stage1.yml')
    with pytest.raises(ValueError, match=r'x\.yml: model_type RealESRNetModel needs CUDA.*model_type: RealHATMSEModel'):
        option_checks.adapt_to_cpu(real, 'x.yml', cuda=False)


def test_prefetch_settings_basicsr_would_refuse_late() -> None:
    opt = load(TRAIN_X2)
    option_checks.check_prefetch_mode(opt)
    opt['datasets']['train']['pin_memory'] = False
    with pytest.raises(ValueError, match='prefetch_mode cuda needs pin_memory: true'):
        option_checks.check_prefetch_mode(opt, 'x.yml')
    opt['datasets']['train']['prefetch_mode'] = 'gpu'
    with pytest.raises(ValueError, match="prefetch_mode 'gpu': BasicSR knows ~, cpu and cuda"):
        option_checks.check_prefetch_mode(opt, 'x.yml')


@no_cuda
def test_nccl_of_a_gpu_option_file_becomes_gloo_without_cuda(tmp_path, monkeypatch, capsys) -> None:
    import basicsr.utils.dist_util as dist_util

    calls = []
    monkeypatch.setattr(distributed.dist, 'init_process_group', lambda backend, **kw: calls.append(backend))
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(TRAIN_X2), '--launcher', 'pytorch'])
    monkeypatch.setenv('RANK', '0')
    dist_util._init_dist_pytorch()
    assert calls == ['gloo']
    assert ("torch.distributed backend 'gloo' (the option file says nccl, which needs CUDA: none here)"
            in capsys.readouterr().out)


@no_cuda
@pytest.mark.slow
def test_gpu_training_file_runs_unchanged_on_the_cpu(data, tmp_path) -> None:
    """options/train_ESC_x2.yml itself (prefetch_mode: cuda, pin_memory: true, num_gpu: auto, the full ESC)."""
    done = run('esc_basicsr.train', '-opt', str(TRAIN_X2), '--force_yml', *train_paths(data),
               'train:total_iter=1', 'datasets:train:batch_size_per_gpu=2', cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith('esc_basicsr:')]
    assert lines == [CPU_LINE.format(TRAIN_X2)]
    exp = tmp_path / 'experiments' / 'ESC_x2'
    assert (exp / 'models' / 'net_g_latest.pth').is_file() and (tmp_path / 'tb_logger' / 'ESC_x2').is_dir()
    log = next(exp.glob('train_ESC_x2_*.log')).read_text()
    assert 'Start training from epoch: 0, iter: 0' in log and 'Validation Set5' in log
    assert 'prefetch_mode: None' in log and 'Use cuda prefetch' not in log


@no_cuda
def test_basicsr_train_stops_before_creating_anything(data, tmp_path) -> None:
    """``python -m basicsr.train`` (rooted at BasicSR's install folder): the CPU line, then one error for
    every unreadable dataset, exit code 2, no traceback, and no experiment folder made or archived."""
    import basicsr

    experiments = Path(basicsr.__file__).resolve().parents[1] / 'experiments'
    before = sorted(experiments.glob('ESC_x2*')) if experiments.is_dir() else None
    paths = train_paths(data)
    paths[1] = f'datasets:train:dataroot_lq={tmp_path}/nowhere_X2_sub.lmdb'
    paths[2] = f'datasets:val:dataroot_gt={tmp_path}/Set5/GTmod12'  # and the validation set is missing too
    done = run('basicsr.train', '-opt', str(TRAIN_X2), '--force_yml', *paths, cwd=tmp_path)
    assert done.returncode == 2 and 'Traceback' not in done.stderr, done.stderr[-3000:]
    assert CPU_LINE.format(TRAIN_X2) in done.stdout
    error = done.stderr[done.stderr.index('error: '):].strip().splitlines()  # after runpy's warning about basicsr
    assert error[0].startswith(f'error: {TRAIN_X2}: 2 of 2 datasets cannot be read, DIV2K, Set5 ')
    assert f"datasets.train.dataroot_lq (DIV2K): '{tmp_path}/nowhere_X2_sub.lmdb' does not exist" in error[1]
    assert f"datasets.val.dataroot_gt (Set5): '{tmp_path}/Set5/GTmod12' does not exist" in error[2]
    assert len(error) == 3  # the training set is missing: no hint to leave it out
    assert (sorted(experiments.glob('ESC_x2*')) if experiments.is_dir() else None) == before
    assert not (tmp_path / 'experiments').exists()


def test_every_missing_benchmark_set_is_listed_with_how_to_run_the_others(data, monkeypatch) -> None:
    monkeypatch.chdir(data.parent)  # datasets/Set5 exists here; Set14 ... Manga109 do not
    monkeypatch.delenv(option_checks.SKIP_MISSING_ENV, raising=False)
    opt = load(TEST_X2)
    with pytest.raises(option_checks.DatasetPathError) as info:
        option_checks.check_dataset_paths(opt, 'test_ESC_x2.yml')
    lines = str(info.value).splitlines()
    assert lines[0].startswith('test_ESC_x2.yml: 4 of 5 datasets cannot be read, Set14, B100, Urban100, Manga109 ')
    assert 'docs/data.md' in lines[0]
    for i, name in enumerate(['Set14', 'B100', 'Urban100', 'Manga109']):
        where = f'  datasets.test_{i + 2}.dataroot'
        assert lines[1 + 2 * i] == f"{where}_gt ({name}): 'datasets/{name}/GTmod12' does not exist"
        assert lines[2 + 2 * i] == f"{where}_lq ({name}): 'datasets/{name}/LRbicx2' does not exist"
    assert lines[9].startswith('To run only Set5: set ESC_BASICSR_SKIP_MISSING_SETS=1 (e.g. '
                               '"ESC_BASICSR_SKIP_MISSING_SETS=1 python -m esc_basicsr.test -opt test_ESC_x2.yml")')
    assert len(lines) == 10

    monkeypatch.setenv(option_checks.SKIP_MISSING_ENV, '1')
    assert option_checks.check_dataset_paths(opt, 'x.yml') == ['Set14', 'B100', 'Urban100', 'Manga109']
    assert [d['name'] for d in opt['datasets'].values()] == ['Set5']


def test_lr_files_named_otherwise_get_the_filename_tmpl_that_fits(data, tmp_path) -> None:
    gt, lq = tmp_path / 'GTmod12', tmp_path / 'LRbicx2'
    gt.mkdir()
    lq.mkdir()
    for stem in ('baby', 'bird'):  # the naming of many public copies: LRbicx2/babyx2.png
        (gt / f'{stem}.png').write_bytes((data / 'Set5' / 'GTmod12' / 'c.png').read_bytes())
        (lq / f'{stem}x2.png').write_bytes((data / 'Set5' / 'LRbicx2' / 'c.png').read_bytes())
    opt = {'datasets': {'test_1': dict(name='Set5', type='PairedImageDataset', dataroot_gt=str(gt),
                                       dataroot_lq=str(lq), io_backend={'type': 'disk'})}}
    with pytest.raises(option_checks.DatasetPathError,
                       match=r"2 of 2 GT files have no LR file named as filename_tmpl '\{\}' says, e.g. "
                             r"'baby.png' -> 'baby.png' \(.*LRbicx2' has 'babyx2.png': set filename_tmpl: '\{\}x2' "
                             r"for this dataset\)"):
        option_checks.check_dataset_paths(opt, 'x.yml')
    opt['datasets']['test_1']['filename_tmpl'] = '{}x2'
    assert option_checks.check_dataset_paths(opt, 'x.yml') == []
    from basicsr.data import build_dataset  # and BasicSR pairs them with that template

    dataset = build_dataset(dict(opt['datasets']['test_1'], phase='test', scale=2))
    assert [Path(p['lq_path']).name for p in dataset.paths] == ['babyx2.png', 'birdx2.png']


@no_cuda
def test_test_file_runs_the_present_sets_with_a_progress_bar(data, tmp_path) -> None:
    """options/test_ESC_x2.yml with only Set5 present, ESC_BASICSR_SKIP_MISSING_SETS=1: one line naming
    what was left out, Set5 tested, BasicSR's progress bar on (``val.pbar: true``)."""
    from esc_basicsr.archs import build

    (tmp_path / 'datasets').symlink_to(data, target_is_directory=True)
    weights = tmp_path / 'w.pth'
    torch.save({'params_ema': build('esc', 2).state_dict()}, weights)
    done = run('esc_basicsr.test', '-opt', str(TEST_X2), '--force_yml', f'path:pretrain_network_g={weights}',
               cwd=tmp_path, env={option_checks.SKIP_MISSING_ENV: '1'})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith('esc_basicsr:')]
    assert lines == ['esc_basicsr: ESC_BASICSR_SKIP_MISSING_SETS: left out Set14, B100, Urban100, Manga109 '
                     '(missing or unreadable, see docs/data.md); running Set5']
    assert 'Test d: 100%' in done.stderr  # tqdm's bar, described with the last image
    assert sorted(p.name for p in (tmp_path / 'results' / 'ESC_x2' / 'visualization' / 'Set5').iterdir()) == [
        'c_ESC_x2.png', 'd_ESC_x2.png']
