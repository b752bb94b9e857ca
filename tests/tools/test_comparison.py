"""Comparison figures (esc_basicsr.tools.comparison) and ``python -m esc_basicsr.infer --compare`` (tiny ESC, CPU)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from esc_basicsr.infer import main as infer_main
from esc_basicsr.tools.comparison import (ComparisonRow, align_gt, bicubic_upscale, nearest_upscale, pick_crop,
                                          psnr_y, render_comparison, to_uint8, write_comparison)

Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966]) / 255  # ITU-R BT.601 luma, as BasicSR's bgr2ycbcr


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A uint8 RGB image with values in [40, 200] (room for offsets without clipping)."""
    return np.random.default_rng(seed).integers(40, 201, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize('channel', [0, 1, 2])
def test_psnr_is_y_channel_psnr_of_rgb_input(channel):
    """An offset of d in one RGB channel changes Y by d * its BT.601 weight: PSNR = 20 log10(255 / that)
    (BasicSR converts in float32: 1e-4 dB; the wrong channel order would be dBs off)."""
    gt = photo(20, 24)
    img = gt.copy()
    img[..., channel] += 10
    expected = 20 * math.log10(255 / (10 * Y_WEIGHTS_RGB[channel]))
    assert psnr_y(img, gt, 2) == pytest.approx(expected, abs=1e-4)
    assert psnr_y(img.astype(np.float32) / 255, gt, 2) == pytest.approx(expected, abs=1e-4)  # float input


def test_psnr_crops_ceil_scale_border():
    gt = photo(20, 24)
    img = gt.copy()
    img[:3] = 0  # rows 0..2: inside the border of ceil(2.5) = 3
    assert psnr_y(img, gt, 2.5) == math.inf
    assert psnr_y(img, gt, 2) < 30  # a border of 2 keeps row 2
    with pytest.raises(ValueError, match='different sizes'):
        psnr_y(img[:-1], gt, 2)


def test_to_uint8_conversions():
    grey = np.array([[0.0, 0.5, 1.0, 1.7]], np.float32)
    assert to_uint8(grey).tolist() == [[[0] * 3, [128] * 3, [255] * 3, [255] * 3]]
    assert to_uint8(np.array([[[65535, 0, 257]]], np.uint16)).tolist() == [[[255, 0, 1]]]
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert to_uint8(rgba).shape == (2, 2, 3)
    with pytest.raises(ValueError, match='dtype'):
        to_uint8(np.zeros((2, 2, 3), np.int64))


def test_nearest_upscale_repeats_pixels():
    lq = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert nearest_upscale(lq, (4, 6)).tolist() == np.repeat(np.repeat(lq, 2, 0), 2, 1).tolist()
    assert nearest_upscale(lq, (5, 8)).shape == (5, 8)  # non-integer factor: any size


def test_align_gt_accepts_exact_and_benchmark_sizes():
    gt = photo(52, 61)
    exact, why = align_gt(gt[:50, :60], (20, 24), 2.5)
    assert why == '' and exact.shape == (50, 60, 3)
    cropped, _ = align_gt(gt, (20, 24), 2.5)  # floor(H/s) LR of a benchmark GT: the top-left part
    assert np.array_equal(cropped, gt[:50, :60])
    none, why = align_gt(gt[:40], (20, 24), 2.5)
    assert none is None and 'GT 40x61 does not match input 20x24 at x2.5 (expected 50x60)' in why


def test_row_psnrs_and_size_checks():
    gt = photo(40, 48)
    lq = cv2.resize(gt, (24, 20), interpolation=cv2.INTER_AREA)
    bic = bicubic_upscale(lq, (40, 48))
    row = ComparisonRow.create('a', lq, bic, gt, gt, 2)
    assert row.psnr['model'] == math.inf and row.psnr['bicubic'] == pytest.approx(psnr_y(bic, gt, 2))
    assert row.psnr['nearest'] == pytest.approx(psnr_y(nearest_upscale(lq, (40, 48)), gt, 2))
    assert [p.shape for p in row.panels] == [(40, 48, 3)] * 4
    with pytest.raises(ValueError, match='model is 40x46'):
        ComparisonRow.create('a', lq, bic, gt[:, :46], gt, 2)
    with pytest.raises(ValueError, match='is not input 20x24 x3'):
        ComparisonRow.create('a', lq, bic, gt, gt, 3)


def test_pick_crop_finds_largest_error_and_is_deterministic():
    gt = np.full((64, 80, 3), 100, np.uint8)
    ref = gt.copy()
    ref[30:46, 50:66] = 110  # the only detail bicubic misses inside the measured area
    ref[:2] = 255  # a larger total error, but in the 2-pixel border that the PSNR ignores
    y, x, side = pick_crop(ref, gt, 16, border=2)
    assert side == 16 and 28 <= y <= 32 and 48 <= x <= 52
    assert pick_crop(ref, gt, 16, border=2) == (y, x, side)
    assert pick_crop(ref, gt, 16)[0] == 0  # without the border: the top rows win
    assert pick_crop(ref, gt, 100)[2] == 64  # a crop larger than the image: the whole height


def test_figure_layout_is_pixel_exact(tmp_path):
    gt = photo(48, 56, seed=1)
    lq = gt[::2, ::2]
    rows = [ComparisonRow.create(n, lq, bicubic_upscale(lq, (48, 56)), gt, gt, 2) for n in ('one', 'two')]
    fig = render_comparison(rows, crop=32, zoom=3, model_label='ESC')
    assert fig.dtype == np.uint8 and fig.shape[1] == 4 * 96 + 5 * 6 and fig.shape[0] > 2 * 96
    # the ground-truth panel of the first row is the crop, enlarged 3x without resampling
    y, x, side = pick_crop(rows[0].panels[1], gt, 32, border=2)
    tile = np.repeat(np.repeat(gt[y:y + side, x:x + side], 3, 0), 3, 1)
    left, top = 6 + 3 * (96 + 6), 2 * 18
    assert np.array_equal(fig[top:top + 96, left:left + 96], tile)

    path = write_comparison(tmp_path / 'fig.png', rows, crop=32, zoom=3, model_label='ESC')
    assert np.array_equal(cv2.imread(str(path))[:, :, ::-1], fig)
    assert [p.name for p in tmp_path.iterdir()] == ['fig.png']  # no temporary left
    before = path.read_bytes()
    with pytest.raises(ValueError, match='at least one image'):
        write_comparison(path, [])
    assert path.read_bytes() == before  # a failed render leaves the old figure whole
    with pytest.raises(ValueError, match='PNG'):
        write_comparison(tmp_path / 'fig.jpg', rows)


# ------------------------------------------------------------------------------------------ infer --compare


@pytest.fixture(scope='module')
def tiny(net) -> dict:
    root = net['root']
    src, gt_dir = root / 'in', root / 'gt'
    src.mkdir()
    gt_dir.mkdir()
    for i, name in enumerate(('a', 'b', 'c', 'd')):
        gt = cv2.GaussianBlur(photo(40, 48, seed=i), (5, 5), 1.5)
        cv2.imwrite(str(src / f'{name}.png'), cv2.resize(gt, (24, 20), interpolation=cv2.INTER_AREA))
        if name == 'b':
            gt = gt[:30]  # not this input's GT at x2
        if name != 'c':  # c has no ground truth
            gt_name = f'{name}.jpg' if name == 'd' else f'{name}.png'
            cv2.imwrite(str(gt_dir / gt_name), gt, [cv2.IMWRITE_JPEG_QUALITY, 100])
    return {'root': root, 'src': src, 'gt': gt_dir}


def run_infer(tiny: dict, out, *extra: str) -> int:
    return infer_main(['-i', str(tiny['src']), '-o', str(out), '--weights', str(tiny['root'] / 'net.pth'),
                       '--opt', str(tiny['root'] / 'opt.yml'), '--device', 'cpu', '--quiet', *extra])


def test_infer_compare_writes_figure_and_psnrs(tiny, tmp_path, capsys):
    out = tmp_path / 'out'
    assert run_infer(tiny, out, '--compare', str(tiny['gt'])) == 0
    err = capsys.readouterr().err
    figure = out / 'comparison.png'
    assert f'comparison figure: {figure}' in err and cv2.imread(str(figure)) is not None
    assert 'b.png: b.png: GT 30x48 does not match input 20x24 at x2 (expected 40x48)' in err
    assert 'c.png: no ground truth named c.*' in err
    # the summary's PSNRs are those of the written outputs and of bicubic against the GT (d: a .jpg GT)
    for name, ext in (('a', 'png'), ('d', 'jpg')):
        gt = cv2.imread(str(tiny['gt'] / f'{name}.{ext}'))[:, :, ::-1]
        sr = cv2.imread(str(out / f'{name}.png'))[:, :, ::-1]
        lq = cv2.imread(str(tiny['src'] / f'{name}.png'))[:, :, ::-1]
        bic = bicubic_upscale(lq, (40, 48))
        assert f'  {name:<12}{psnr_y(bic, gt, 2):>10.2f}{psnr_y(sr, gt, 2):>12.2f}' in err
    assert '  b ' not in err and '  c ' not in err


def test_infer_compare_errors(tiny, tmp_path, capsys):
    out = tmp_path / 'out'
    assert run_infer(tiny, out, '--compare', str(tmp_path / 'nowhere')) == 2
    assert '--compare' in capsys.readouterr().err and not out.exists()  # refused before any work
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert run_infer(tiny, out, '--compare', str(empty)) == 0
    assert 'no output could be compared' in capsys.readouterr().err and not (out / 'comparison.png').exists()
