"""Issue 22, ``export`` and ``prepare``: what could not be written is an error naming the path and the reason
(never a traceback or a partial file), a verification that compared NaN is a failure, impossible numbers are
refused in one line with exit code 2, and another dataset's LMDB is never replaced."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from esc_basicsr import export as export_module
from esc_basicsr import prepare




def exit_code(func, argv: list[str]) -> int:
    """The exit code of a ``main`` that returns it or exits through argparse."""
    try:
        return func(argv)
    except SystemExit as exc:
        return exc.code


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith('usage:')
             and not line.startswith('  ')]
    assert 'Traceback' not in err and len(lines) == 1 and 'error' in lines[0], err
    return lines[0]


# ---- export ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('atol', ['nan', '-1', 'inf'])
def test_export_refuses_an_atol_that_accepts_everything_or_nothing(net, tmp_path, capsys, atol):
    argv = ['--weights', net['weights'], '--onnx', str(tmp_path / 'm.onnx'), '--atol', atol]
    assert exit_code(export_module.main, argv) == 2
    assert '--atol' in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / 'm.onnx').exists()


def test_export_verification_of_nan_is_a_failure(net, tmp_path, monkeypatch, capsys):
    from esc_basicsr.tools import onnx_export

    monkeypatch.setattr(onnx_export, 'verify_onnx', lambda model, path, sizes: [
        {'size': tuple(s), 'output': (s[0], 3, 2 * s[2], 2 * s[3]), 'max_abs_diff': float('nan')} for s in sizes])
    assert export_module.main(['--weights', net['weights'], '--onnx', str(tmp_path / 'm.onnx')]) == 1
    err = capsys.readouterr().err
    assert 'nan' in err.lower() and 'differs' in err


def run_limited(args: list[str], max_file_bytes: int, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m esc_basicsr.<args>`` where no file may grow beyond ``max_file_bytes`` (a full disk: writes
    fail with EFBIG)."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run([sys.executable, '-m', *args], cwd=cwd, capture_output=True, text=True, preexec_fn=limit,
                          timeout=600)


def test_export_into_a_full_folder_is_one_error_and_leaves_no_file(net, tmp_path):
    out = tmp_path / 'full'
    out.mkdir()
    res = run_limited(['esc_basicsr.export', '--weights', net['weights'], '-o', str(out / 'd.pth')], 20_000, tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    line = one_line_error(res.stderr)
    assert 'd.pth' in line and 'too large' in line.lower()  # the path and the reason (EFBIG here)
    assert list(out.iterdir()) == []  # no partial file, no temporary
    res = run_limited(['esc_basicsr.export', '--weights', net['weights'], '--onnx', str(out / 'm.onnx'),
                       '--no-verify'], 20_000, tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert 'm.onnx' in one_line_error(res.stderr)
    assert list(out.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_export_into_a_read_only_folder_is_one_error(net, tmp_path):
    out = tmp_path / 'ro'
    out.mkdir()
    out.chmod(0o555)
    try:
        res = subprocess.run([sys.executable, '-m', 'esc_basicsr.export', '--weights', net['weights'], '-o',
                              str(out / 'd.pth')], capture_output=True, text=True, timeout=600)
        assert res.returncode == 2
        assert 'd.pth' in one_line_error(res.stderr)
    finally:
        out.chmod(0o755)


def test_export_into_a_read_only_folder_in_process(net, tmp_path, monkeypatch, capsys):
    """The same refusal where the test runs as root: the final rename is refused as on a read-only folder."""
    def read_only(src, dst):
        raise PermissionError(13, 'Permission denied', str(dst))

    monkeypatch.setattr(os, 'replace', read_only)
    assert export_module.main(['--weights', net['weights'], '-o', str(tmp_path / 'd.pth')]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert 'd.pth' in line and 'Permission denied' in line
    assert list(tmp_path.iterdir()) == []


# ---- prepare ---------------------------------------------------------------------------------------------------

@pytest.fixture()
def hr(tmp_path) -> Path:
    folder = tmp_path / 'hr'
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / 'a.png'), rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    return folder


@pytest.mark.parametrize('flag, value', [('--mod', '0'), ('--mod', '-12'), ('--workers', '0'), ('--crop-size', '0'),
                                         ('--step', '-1'), ('--max-pixels', '0'), ('--thresh-size', '-1')])
def test_prepare_refuses_impossible_numbers_in_one_line(hr, tmp_path, capsys, flag, value):
    argv = ['div2k', '--hr', str(hr), '--out', str(tmp_path / 'out'), '--name', 'T', '--scales', '2', '--crop-size',
            '24', '--step', '24', '--workers', '1', flag, value]
    assert exit_code(prepare.main, argv) == 2
    assert flag in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()
    argv = ['benchmark', '--hr', str(hr), '--out', str(tmp_path / 'b'), '--scales', '2', flag, value]
    if flag in ('--mod', '--workers', '--max-pixels'):
        assert exit_code(prepare.main, argv) == 2
        capsys.readouterr()


def test_prepare_never_replaces_another_datasets_lmdb(hr, tmp_path, capsys):
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    out = tmp_path / 'datasets'
    theirs = out / 'T_HR_sub'
    theirs.mkdir(parents=True)
    cv2.imwrite(str(theirs / 'other_s001.png'), np.full((24, 24, 3), 7, np.uint8))
    cv2.imwrite(str(theirs / 'a_s001.png'), np.full((24, 24, 3), 9, np.uint8))  # a name this run would write
    make_lmdb_from_imgs(str(theirs), str(out / 'T_HR_sub.lmdb'), ['other_s001.png', 'a_s001.png'],
                        ['other_s001', 'a_s001'], map_size=1 << 26)
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob('*')) if p.is_file()}
    capsys.readouterr()
    argv = ['div2k', '--hr', str(hr), '--out', str(out), '--name', 'T', '--scales', '2', '--crop-size', '24',
            '--step', '24', '--workers', '1']
    assert prepare.main(argv) == 2
    line = one_line_error(capsys.readouterr().err)
    assert 'T_HR_sub' in line and 'esc_basicsr' in line
    after = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob('*')) if p.is_file()}
    assert after == before
    assert prepare.main(argv[:6] + ['T2'] + argv[7:]) == 0  # another --name is fine
    assert prepare.main(argv[:6] + ['T2'] + argv[7:]) == 0  # and so is re-running it
