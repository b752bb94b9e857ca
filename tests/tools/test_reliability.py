"""Issue 11: the tools never overwrite inputs, lose results or half-write files, read every image
upright and within a pixel limit, map bit depth and alpha to what the output format holds, and
refuse bad option files/weights/paths with exit code 2 before any work (tiny ESC, CPU)."""
from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image as PILImage
from PIL import ImageOps

from tests.tools.conftest import TINY
from esc_basicsr import prepare
from esc_basicsr.infer import main as infer
from esc_basicsr.tools.options_check import check_network_g
from esc_basicsr.utils import atomic
from esc_basicsr.utils.image_io import ImageReadError, ImageWriteError, compose, plan_output, read_bgr8, read_image
from esc_basicsr.utils.options import check_scale_agreement
from esc_basicsr.utils.output_paths import OutputPathError, check_distinct_files, list_inputs, plan_outputs

from tests.conftest import read_lmdb_image



def smooth(h: int, w: int) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing='ij')
    return np.stack([0.5 + 0.4 * np.sin(3 * xx + 2 * yy), 0.5 + 0.4 * np.cos(2 * xx - yy), 0.3 + 0.5 * xx * yy], 2)


def rgb8(h: int = 12, w: int = 16, shift: int = 0) -> np.ndarray:
    return (np.roll(smooth(h, w), shift, axis=1) * 255).round().astype(np.uint8)



def run(net: dict, src, out, *extra: str, opt: str | None = None, weights: str | None = None) -> int:
    return infer(['-i', str(src), '-o', str(out), '--weights', weights or net['weights'], '--opt', opt or net['opt'],
                  '--device', 'cpu', '--quiet', *extra])


def photos(folder: Path, n: int = 2) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f'p{i}.png'), rgb8(shift=i))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


# ---- output paths: inputs are never overwritten, results never lost -------------------------------------------

def test_output_folder_equal_to_input_folder_is_refused_in_every_spelling(net, tmp_path, monkeypatch, capsys):
    src = tmp_path / 'photos'
    before = photos(src)
    (tmp_path / 'link').symlink_to(src, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for out in ['photos', './photos/', str(src), 'link', 'photos/../photos']:
        assert run(net, 'photos', out) == 2, out
        assert 'is the input folder' in capsys.readouterr().err
    assert run(net, str(src / '*.png'), 'photos', '--suffix', '_x2') == 2  # a glob's folder too
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # nothing written, nothing lost


def test_output_file_that_is_an_input_is_refused(net, tmp_path, capsys):
    src = tmp_path / 'in'
    photos(src, 1)
    assert run(net, src / 'p0.png', src) == 2  # one file, written next to itself
    assert 'is the input file' in capsys.readouterr().err
    assert run(net, src / 'p0.png', src, '--suffix', '/../p0') == 2
    assert 'path separator' in capsys.readouterr().err
    assert run(net, src / 'p0.png', src / 'p0.png' / 'x') == 2  # -o below a file
    assert 'cannot write there' in capsys.readouterr().err
    assert run(net, src / 'p0.png', src, '--suffix', '_x2') == 0  # with a suffix it is a new file
    out = tmp_path / 'out'
    out.mkdir()
    os.symlink(src / 'p0.png', out / 'p0.png')  # an output name that is a link to an input
    os.link(src / 'p0_x2.png', out / 'p0_x2.png')  # or a hard link
    for extra in [(), ('--suffix', '_x2')]:
        assert run(net, src, out, *extra) == 2
        assert 'is the input file' in capsys.readouterr().err


def test_nested_output_folder_is_not_read_again(net, tmp_path):
    src = tmp_path / 'photos'
    photos(src)
    out = src / 'results'
    assert run(net, src, out) == 0
    assert run(net, src, out) == 0  # the second run sees the same 2 inputs, not its own results
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob('*.png')) == [
        'p0.png', 'p1.png', 'results/p0.png', 'results/p1.png']
    assert [rel.as_posix() for _, rel in list_inputs(str(src / '**' / '*.png'), exclude=[out])] == ['p0.png', 'p1.png']


def test_two_inputs_for_one_output_name_are_refused(net, tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'p.png'), rgb8())
    cv2.imwrite(str(src / 'p.jpg'), rgb8())
    assert run(net, src, tmp_path / 'out', '--ext', 'png') == 2
    err = capsys.readouterr().err
    assert 'p.jpg' in err and 'p.png' in err and 'written twice' in err
    assert not (tmp_path / 'out').exists()
    assert run(net, src, tmp_path / 'out') == 0  # each keeps its format: two results
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['p.jpg', 'p.png']
    # names differing only in case would overwrite each other on Windows/macOS
    inputs = [(Path('A.png'), Path('A.png')), (Path('a.png'), Path('a.png'))]
    with pytest.raises(OutputPathError, match='written twice'):
        plan_outputs(inputs, tmp_path / 'o')


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / 'sub' / 'r.png'
    atomic.write_bytes(target, b'old')
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b'half')
            raise RuntimeError('killed')
    assert target.read_bytes() == b'old'
    assert sorted(p.name for p in target.parent.iterdir()) == ['r.png']  # no temporary left
    with atomic.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == '.png' and tmp.name.startswith('.')
        tmp.write_bytes(b'new')
    assert target.read_bytes() == b'new'


def test_failed_write_leaves_no_file_under_the_final_name(net, tmp_path, monkeypatch, capsys):
    src = tmp_path / 'in'
    photos(src)

    real = atomic.write_bytes

    def full_disk(path, data, make_parents=True):
        if Path(path).name == '.write-test':  # the check of -o before the run still passes
            return real(path, data, make_parents)
        with atomic.atomic_path(path, make_parents) as tmp:
            tmp.write_bytes(data[:len(data) // 2])
            raise OSError('disk full (simulated)')

    monkeypatch.setattr(atomic, 'write_bytes', full_disk)
    assert run(net, src, tmp_path / 'out') == 1
    err = capsys.readouterr().err
    assert '0 image(s) written' in err and 'disk full' in err
    assert not [p for p in (tmp_path / 'out').rglob('*') if p.is_file()]


# ---- the image reader ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('orientation', range(1, 9))
@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'WEBP', 'TIFF'])
def test_exif_orientation_is_applied(tmp_path, orientation, fmt):
    pixels = np.random.default_rng(orientation).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    im = PILImage.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f'o.{fmt.lower()}'
    im.save(path, fmt, exif=exif.tobytes(), **({'quality': 100} if fmt == 'JPEG' else {'lossless': True}
                                                 if fmt == 'WEBP' else {}))
    upright = np.asarray(ImageOps.exif_transpose(PILImage.open(path)).convert('RGB')).astype(int)
    ours = read_bgr8(path)[:, :, ::-1].astype(int)
    assert ours.shape == upright.shape == ((10, 6, 3) if orientation >= 5 else (6, 10, 3))
    assert np.abs(ours - upright).max() <= (2 if fmt == 'JPEG' else 0)
    rgb = read_image(path).rgb
    assert np.abs(rgb * 255 - ours).max() < 1e-3


def test_phone_photo_comes_out_upright(net, tmp_path):
    im = PILImage.fromarray(rgb8(12, 16))
    exif = im.getexif()
    exif[0x0112] = 6  # stored 90 degrees counter-clockwise
    im.save(tmp_path / 'phone.jpg', quality=95, exif=exif.tobytes())
    assert run(net, tmp_path / 'phone.jpg', tmp_path / 'out') == 0
    assert cv2.imread(str(tmp_path / 'out' / 'phone.jpg')).shape == (32, 24, 3)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header announces ``width x height`` (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def test_pixel_limit_before_decoding_and_one_bad_file_does_not_stop_the_batch(net, tmp_path, capsys):
    src = tmp_path / 'in'
    photos(src, 1)
    (src / 'bomb.png').write_bytes(_png_header_only(200_000, 200_000))  # 40 G pixels: 120 GB if decoded
    (src / 'big.png').write_bytes(_png_header_only(40_000, 40_000))  # within OpenCV's limit only with ours raised
    with pytest.raises(ImageReadError, match='more than the limit'):
        read_image(src / 'bomb.png')
    assert run(net, src, tmp_path / 'out') == 1
    err = capsys.readouterr().err
    assert '1 image(s) written' in err and 'bomb.png' in err and 'big.png' in err
    assert run(net, src, tmp_path / 'out2', '--max-pixels', str(2 ** 40)) == 1  # then OpenCV's own limit: reported
    assert '1 image(s) written' in capsys.readouterr().err
    assert (tmp_path / 'out2' / 'p0.png').is_file()


def test_16_bit_into_8_bit_formats_is_scaled_not_clipped(net, tmp_path, capsys):
    deep = (smooth(12, 16) * 65535).round().astype(np.uint16)
    cv2.imwrite(str(tmp_path / 'deep.png'), deep)
    plan = plan_output('rgb', np.dtype(np.uint16), '.jpg')
    assert plan.dtype == np.uint8 and '16-bit written as 8-bit JPEG' in plan.note
    scaled = compose(read_image(tmp_path / 'deep.png').rgb, None, plan)
    assert scaled.dtype == np.uint8 and np.abs(scaled.astype(int) - np.rint(deep / 257)).max() <= 1
    assert run(net, tmp_path / 'deep.png', tmp_path / 'out', '--ext', 'jpg') == 0
    assert 'note: 1 image(s): 16-bit written as 8-bit JPEG (scaled)' in capsys.readouterr().err
    out = cv2.imread(str(tmp_path / 'out' / 'deep.jpg'), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint8 and (out == 255).mean() < 0.01  # clipping put 43% of pixels at 255
    assert plan_output('rgb', np.dtype(np.uint16), '.png').dtype == np.uint16  # kept where it fits
    assert plan_output('rgb', np.dtype(np.float32), '.png').dtype == np.uint16


def test_grey_alpha_stays_grey_alpha_and_alpha_is_never_dropped_silently(net, tmp_path, capsys):
    la = np.stack([rgb8()[:, :, 0], np.linspace(0, 255, 12 * 16).reshape(12, 16).astype(np.uint8)], 2)
    PILImage.fromarray(la, 'LA').save(tmp_path / 'ga.png')
    assert read_image(tmp_path / 'ga.png').layout == 'graya'
    assert run(net, tmp_path / 'ga.png', tmp_path / 'out') == 0
    out = PILImage.open(tmp_path / 'out' / 'ga.png')
    assert out.mode == 'LA' and out.size == (32, 24)
    assert run(net, tmp_path / 'ga.png', tmp_path / 'tif', '--ext', 'tiff') == 0  # no LA in OpenCV's TIFF: RGBA
    tif = cv2.imread(str(tmp_path / 'tif' / 'ga.tiff'), cv2.IMREAD_UNCHANGED)
    assert tif.shape == (24, 32, 4) and np.array_equal(tif[:, :, 0], tif[:, :, 2])

    rgba = np.concatenate([rgb8(), la[:, :, 1:]], 2)
    cv2.imwrite(str(tmp_path / 'rgba.png'), rgba)
    assert run(net, tmp_path / 'rgba.png', tmp_path / 'jpg', '--ext', 'jpg') == 1
    assert 'alpha channel that JPEG cannot store' in capsys.readouterr().err
    assert not (tmp_path / 'jpg' / 'rgba.jpg').exists()
    assert run(net, tmp_path / 'rgba.png', tmp_path / 'jpg', '--ext', 'jpg', '--alpha', 'drop') == 0
    assert cv2.imread(str(tmp_path / 'jpg' / 'rgba.jpg'), cv2.IMREAD_UNCHANGED).shape == (24, 32, 3)
    with pytest.raises(ImageWriteError, match='grey images only'):
        plan_output('rgb', np.dtype(np.uint8), '.pgm')
    assert run(net, tmp_path / 'rgba.png', tmp_path / 'x', '--ext', 'gif') == 2
    assert "cannot write '.gif'" in capsys.readouterr().err


# ---- checks before anything is built ----------------------------------------------------------------------------

@pytest.mark.parametrize('text, message', [
    (yaml.safe_dump({'network_g': {**TINY, 'dimm': 16}}), "no argument 'dimm'; did you mean 'dim'"),
    (yaml.safe_dump({'network_g': {**TINY, 'type': 'ESCC'}}), "unknown architecture type 'ESCC'; did you mean 'ESC'"),
    (yaml.safe_dump({'network_g': {**TINY, 'dim': '32'}}), "argument 'dim' must be int, got '32'"),
    (yaml.safe_dump({'network_g': {k: v for k, v in TINY.items() if k != 'pdim'}}), 'ESC needs pdim'),
    ('network_g:\n  type: ESC\n   dim: 16\n', 'not valid YAML at line 3'),
    ('just text', 'not a BasicSR option file'),
])
def test_bad_option_files_exit_2_with_a_clear_error(net, tmp_path, capsys, text, message):
    (tmp_path / 'bad.yml').write_text(text)
    photos(tmp_path / 'in', 1)
    assert run(net, tmp_path / 'in', tmp_path / 'out', opt=str(tmp_path / 'bad.yml')) == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err
    assert not (tmp_path / 'out').exists()


class NotAWeight:  # a pickled object that weights_only loading refuses
    pass


def test_bad_weights_exit_2_without_unsafe_advice(net, tmp_path, capsys):
    photos(tmp_path / 'in', 1)
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    torch.save({'params': {}, 'extra': NotAWeight()}, tmp_path / 'pickled.pth')
    (tmp_path / 'empty.pth').write_bytes(b'')
    for name, message in [('text.pth', 'not a PyTorch checkpoint'), ('empty.pth', 'empty file'),
                          ('pickled.pth', 'refused'), ('missing.pth', 'no such file')]:
        assert run(net, tmp_path / 'in', tmp_path / 'out', weights=str(tmp_path / name)) == 2
        err = capsys.readouterr().err
        assert message in err and 'weights_only=False' not in err, err


def test_scale_agreement_of_training_option_files(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match='upscaling_factor: 4 disagrees with scale: 2'):
        check_scale_agreement({'scale': 2, 'network_g': {**TINY, 'upscaling_factor': 4}})
    check_scale_agreement({'scale': 2, 'network_g': TINY})
    check_network_g(TINY)
    # through BasicSR's own parse_options (wrapped by esc_basicsr), before any folder exists
    import basicsr  # noqa: F401  (installs the wrapper)
    from basicsr.utils.options import parse_options

    opt = {'name': 'mismatch', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
           'datasets': {}, 'network_g': {**TINY, 'upscaling_factor': 4}, 'path': {}, 'train': {}}
    (tmp_path / 'train.yml').write_text(yaml.safe_dump(opt))
    monkeypatch.setattr(sys, 'argv', ['train', '-opt', str(tmp_path / 'train.yml')])
    with pytest.raises(ValueError, match='disagrees with scale'):
        parse_options(str(tmp_path), is_train=True)
    assert not (tmp_path / 'experiments').exists()


def test_export_paths(net, tmp_path, capsys):
    from esc_basicsr.export import main as export

    base = ['--weights', net['weights'], '--opt', net['opt']]
    assert export([*base, '-o', net['weights']]) == 2  # would replace the training checkpoint
    assert 'is the --weights file' in capsys.readouterr().err
    assert export([*base, '-o', str(tmp_path / 'a.onnx'), '--onnx', str(tmp_path / 'a.onnx')]) == 2
    assert export([*base, '-o', str(tmp_path / 'new' / 'd.pth'), '--onnx', str(tmp_path / 'missing' / 'm.onnx'),
                   '--verify-sizes', '9x11']) == 0  # folders created, files complete
    assert torch.load(tmp_path / 'new' / 'd.pth', weights_only=True)['deployed']
    assert (tmp_path / 'missing' / 'm.onnx').stat().st_size > 0
    assert [p.name for p in (tmp_path / 'missing').iterdir()] == ['m.onnx']  # no temporary left
    with pytest.raises(OutputPathError, match='--csv and --plot name the same file'):
        check_distinct_files({'--json': None, '--csv': tmp_path / 'r', '--plot': tmp_path / 'R'}, {})


# ---- prepare --------------------------------------------------------------------------------------------------

def test_prepare_bad_paths_write_nothing(tmp_path, capsys):
    hr = tmp_path / 'hr'
    photos(hr, 1)
    out = tmp_path / 'out'
    args = ['div2k', '--out', str(out), '--name', 'T', '--scales', '2', '--workers', '1']
    assert prepare.main([*args, '--hr', str(tmp_path / 'hrr'), '--crop-size', '12', '--step', '12']) == 2
    assert not (out / 'T_prepare.json').exists()
    assert prepare.main([*args, '--hr', str(hr), '--crop-size', '6', '--step', '6']) == 0  # other sizes: fine
    (tmp_path / 'file').write_text('x')
    for bad in [tmp_path / 'file', tmp_path / 'file' / 'sub']:
        assert prepare.main(['benchmark', '--hr', str(hr), '--out', str(bad), '--scales', '2']) == 2
        assert 'error: --out' in capsys.readouterr().err
    assert prepare.main(['benchmark', '--hr', str(tmp_path / 'b' / 'GTmod12'), '--out', str(tmp_path / 'b')]) == 2
    photos(tmp_path / 'b' / 'GTmod12', 1)
    assert prepare.main(['benchmark', '--hr', str(tmp_path / 'b' / 'GTmod12'), '--out', str(tmp_path / 'b')]) == 2
    assert 'would be overwritten' in capsys.readouterr().err


def test_prepare_redoes_a_replaced_source(tmp_path):
    hr = tmp_path / 'hr'
    hr.mkdir()
    first, second = rgb8(24, 36), rgb8(24, 36, shift=7)[::-1].copy()
    cv2.imwrite(str(hr / 'a.png'), first)
    out = tmp_path / 'out'
    args = ['div2k', '--hr', str(hr), '--out', str(out), '--name', 'T', '--scales', '2', '--crop-size', '12',
            '--step', '12', '--workers', '1']
    assert prepare.main(args) == 0
    assert np.array_equal(read_lmdb_image(out / 'T_HR_sub.lmdb', 'a_s001'), first[:12, :12])
    cv2.imwrite(str(hr / 'a.png'), second[:12])  # same name, other pixels and fewer crops
    assert prepare.main(args) == 0
    assert np.array_equal(read_lmdb_image(out / 'T_HR_sub.lmdb', 'a_s001'), second[:12, :12])
    assert sorted(p.name for p in (out / 'T_HR_sub').iterdir()) == ['a_s001.png', 'a_s002.png', 'a_s003.png']
    lmdb_bytes = (out / 'T_HR_sub.lmdb' / 'data.mdb').read_bytes()
    assert prepare.main(args) == 0  # unchanged source: kept as it is
    assert (out / 'T_HR_sub.lmdb' / 'data.mdb').read_bytes() == lmdb_bytes

    bench = tmp_path / 'bench'
    cv2.imwrite(str(hr / 'a.png'), first)
    assert prepare.main(['benchmark', '--hr', str(hr), '--out', str(bench), '--scales', '2']) == 0
    cv2.imwrite(str(hr / 'a.png'), second)
    assert prepare.main(['benchmark', '--hr', str(hr), '--out', str(bench), '--scales', '2']) == 0
    assert np.array_equal(cv2.imread(str(bench / 'GTmod12' / 'a.png')), second)
