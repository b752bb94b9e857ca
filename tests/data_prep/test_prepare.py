"""``python -m esc_basicsr.prepare``: the sub-image/LMDB recipe, benchmarks, idempotent re-runs,
bad inputs reported and skipped (exit code 1), and nothing already written lost on a failure."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from esc_basicsr import prepare
from esc_basicsr.data_prep.crop import mod_crop, subimage_boxes
from esc_basicsr.data_prep.lmdb_tools import lmdb_complete, meta_info_keys
from esc_basicsr.utils.matlab_resize import bicubic_resize

from tests.conftest import read_lmdb_image

CROP, STEP = 96, 48


def _png_bytes(img: np.ndarray) -> bytes:
    return cv2.imencode('.png', img)[1].tobytes()


@pytest.fixture()
def hr_dir(tmp_path) -> Path:
    """Two photos (odd sizes, so mod-cropping matters), a grey one, a truncated PNG and a tiny image."""
    hr = tmp_path / 'hr'
    hr.mkdir()
    astronaut = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(hr / 'a.png'), astronaut[:197, :250])
    cv2.imwrite(str(hr / 'b.jpg'), cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR)[:150, :163])
    cv2.imwrite(str(hr / 'c.png'), skdata.camera()[100:220, 50:200])  # grey -> 3 channels
    (hr / 'broken.png').write_bytes(_png_bytes(astronaut[:120, :120])[:500])  # truncated
    cv2.imwrite(str(hr / 'tiny.png'), astronaut[:40, :40])
    return hr


def _div2k_args(hr: Path, out: Path, *extra: str) -> list[str]:
    return ['div2k', '--hr', str(hr), '--out', str(out), '--name', 'T', '--scales', '2', '3', '4',
            '--crop-size', str(CROP), '--step', str(STEP), *extra]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every file under folder: unchanged means not rewritten."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in folder.rglob('*') if p.is_file() and p.name != 'lock.mdb'}


def test_div2k_recipe_cli_and_rerun(hr_dir, tmp_path):
    out = tmp_path / 'DIV2K'
    proc = subprocess.run([sys.executable, '-m', 'esc_basicsr.prepare', *_div2k_args(hr_dir, out, '--workers', '2')],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # bad inputs -> non-zero, the rest is done
    assert 'broken.png: unreadable image' in proc.stderr and 'tiny.png: too small' in proc.stderr
    assert '3 processed, 0 already complete, 2 failed' in proc.stderr

    gt_lmdb = out / 'T_HR_sub.lmdb'
    keys = meta_info_keys(gt_lmdb)
    img_a = mod_crop(cv2.imread(str(hr_dir / 'a.png')), 12)  # 192 x 240
    boxes = subimage_boxes(*img_a.shape[:2], CROP, STEP, 0)
    assert len(boxes) == 3 * 4 and boxes[-1] == (192 - CROP, 240 - CROP)
    assert sorted(k for k in keys if k.startswith('a_')) == [f'a_s{i:03d}' for i in range(1, 13)]
    assert {k.split('_s')[0] for k in keys} == {'a', 'b', 'c'}
    for s in (2, 3, 4):
        lq_lmdb = out / f'T_LR_bicubic_X{s}_sub.lmdb'
        assert lmdb_complete(lq_lmdb, keys) and meta_info_keys(lq_lmdb) == keys
        # the LR sub-image is the MATLAB-bicubic downscale of the whole image, cropped at the same place
        lr_full = bicubic_resize(img_a, 1 / s)
        y, x = boxes[5]
        lq = read_lmdb_image(lq_lmdb, 'a_s006')
        assert lq.shape == (CROP // s, CROP // s, 3)
        np.testing.assert_array_equal(lq, lr_full[y // s:(y + CROP) // s, x // s:(x + CROP) // s])
    np.testing.assert_array_equal(read_lmdb_image(gt_lmdb, 'a_s006'), img_a[y:y + CROP, x:x + CROP])
    assert read_lmdb_image(gt_lmdb, 'c_s001').shape == (CROP, CROP, 3)

    # re-run: everything is complete, nothing is rewritten, the bad inputs are still reported
    before = _snapshot(out)
    assert prepare.main(_div2k_args(hr_dir, out, '--workers', '1')) == 1
    assert _snapshot(out) == before

    # other crop parameters for the same outputs are refused (exit code 2)
    assert prepare.main(['div2k', '--hr', str(hr_dir), '--out', str(out), '--name', 'T', '--crop-size', '120',
                         '--step', '60']) == 2


def test_div2k_incomplete_outputs_are_redone_and_failures_keep_old_lmdb(hr_dir, tmp_path, monkeypatch):
    (hr_dir / 'broken.png').unlink()
    (hr_dir / 'tiny.png').unlink()
    out = tmp_path / 'DIV2K'
    assert prepare.main(_div2k_args(hr_dir, out, '--workers', '1')) == 0
    gt_lmdb = out / 'T_HR_sub.lmdb'
    old_keys = meta_info_keys(gt_lmdb)

    # a half-written sub-image (as a non-atomic writer would leave it) is detected and rewritten
    sub = out / 'T_LR_bicubic_X3_sub' / 'b_s002.png'
    good = sub.read_bytes()
    sub.write_bytes(good[:len(good) // 2])
    # a new image arrives, and building the new LMDB fails half-way: the old LMDBs stay as they were
    cv2.imwrite(str(hr_dir / 'd.png'), cv2.cvtColor(skdata.chelsea(), cv2.COLOR_RGB2BGR)[:100, :100])
    import basicsr.utils.lmdb_util as lmdb_util

    def crash(data_path, lmdb_path, *args, **kwargs):
        Path(lmdb_path).mkdir()
        (Path(lmdb_path) / 'data.mdb').write_bytes(b'partial')
        raise OSError('disk full (simulated)')

    monkeypatch.setattr(lmdb_util, 'make_lmdb_from_imgs', crash)
    with pytest.raises(OSError, match='simulated'):
        prepare.main(_div2k_args(hr_dir, out, '--workers', '1'))
    assert lmdb_complete(gt_lmdb, old_keys)
    assert not [p for p in out.iterdir() if '.tmp-' in p.name]  # no half-written LMDB left behind
    assert sub.read_bytes() == good  # redone before the LMDB step

    monkeypatch.undo()
    assert prepare.main(_div2k_args(hr_dir, out, '--workers', '1')) == 0
    new_keys = meta_info_keys(gt_lmdb)
    assert set(new_keys) == set(old_keys) | {'d_s001'}  # 100x100 -> 96x96: one crop
    assert lmdb_complete(out / 'T_LR_bicubic_X4_sub.lmdb', new_keys)


def test_benchmark(hr_dir, tmp_path):
    out = tmp_path / 'Set5'
    assert prepare.main(['benchmark', '--hr', str(hr_dir), '--out', str(out), '--scales', '2', '3', '4',
                         '--workers', '1']) == 1  # broken.png
    names = sorted(p.name for p in (out / 'GTmod12').iterdir())
    assert names == ['a.png', 'b.png', 'c.png', 'tiny.png']
    for name in names:
        gt = cv2.imread(str(out / 'GTmod12' / name))
        assert gt.shape[0] % 12 == 0 and gt.shape[1] % 12 == 0
        for s in (2, 3, 4):
            lq = cv2.imread(str(out / f'LRbicx{s}' / name))
            np.testing.assert_array_equal(lq, bicubic_resize(gt, 1 / s))
    before = _snapshot(out)
    assert prepare.main(['benchmark', '--hr', str(hr_dir), '--out', str(out), '--scales', '2', '3', '4']) == 1
    assert _snapshot(out) == before


@pytest.mark.parametrize('taken, kind', [
    ('T_HR_sub.lmdb', 'file'),  # was renamed to a hidden .T_HR_sub.tmp-PID-old.lmdb, the LMDB in its place
    ('T_LR_bicubic_X2_sub.lmdb', 'folder'),  # the user's own LMDB (no esc_basicsr_sources.sha256)
    ('T_HR_sub', 'file'),  # was a FileExistsError traceback
    ('T_prepare.json', 'folder'),
    ('.T_sources', 'file'),
])
def test_div2k_never_touches_an_output_name_taken_by_the_user(hr_dir, tmp_path, capsys, taken, kind):
    """Issue 27: a taken output name is refused in one line (exit 2) before anything is made; the user's
    file or folder is left as it was."""
    out = tmp_path / 'out'
    out.mkdir()
    path = out / taken
    if kind == 'file':
        path.write_bytes(b'my own data')
    else:
        path.mkdir()
        (path / 'data.mdb').write_bytes(b'my own lmdb')
    before = sorted(p.name for p in out.iterdir())
    assert prepare.main(_div2k_args(hr_dir, out, '--workers', '1')) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'error: {path} ') and 'move it away' in err[0], err
    assert sorted(p.name for p in out.iterdir()) == before  # nothing made, nothing renamed
    assert (path.read_bytes() if kind == 'file' else (path / 'data.mdb').read_bytes()) in (b'my own data',
                                                                                          b'my own lmdb')


def test_benchmark_output_name_taken_by_a_file_is_refused(hr_dir, tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'LRbicx2').write_bytes(b'my own data')
    assert prepare.main(['benchmark', '--hr', str(hr_dir), '--out', str(out), '--scales', '2', '--workers', '1']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'LRbicx2 exists and is a file' in err[0], err
    assert sorted(p.name for p in out.iterdir()) == ['LRbicx2']
