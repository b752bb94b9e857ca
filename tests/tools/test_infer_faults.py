"""Issue 22, ``infer``: what users and their machines do to a batch loses nothing and hangs nothing.

--compare GT -o GT, a user's own ``.write-test``, FIFOs and symlink loops among the inputs, images too large
for the memory, MemoryError, animated images, non-finite outputs, Ctrl-C, and BasicSR's SwinIR on an image
smaller than its window (tiny ESC / SwinIR, CPU)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image as PILImage

from tests.tools.conftest import TINY
from esc_basicsr import infer as infer_module
from esc_basicsr.tools import memory_check
from esc_basicsr.infer import main as infer
from esc_basicsr.utils import image_io
from esc_basicsr.utils.output_paths import list_inputs




def run(net: dict, src, out, *extra: str, weights: str | None = None, opt: str | None = None) -> int:
    return infer(['-i', str(src), '-o', str(out), '--weights', weights or net['weights'], '--opt', opt or net['opt'],
                  '--device', 'cpu', '--quiet', *extra])


def rgb8(h: int = 12, w: int = 16, shift: int = 0) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing='ij')
    img = np.stack([0.5 + 0.4 * np.sin(3 * xx + 2 * yy + shift), 0.5 + 0.4 * np.cos(2 * xx - yy), 0.3 + 0.5 * xx], 2)
    return (img * 255).round().astype(np.uint8)


def photos(folder: Path, n: int = 2) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f'p{i}.png'), rgb8(shift=i))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


# ---- nothing of the user's is overwritten or deleted ------------------------------------------------------------

def test_compare_folder_is_never_the_output_folder(net, tmp_path, monkeypatch, capsys):
    photos(tmp_path / 'lr')
    gt = tmp_path / 'gt'
    gt.mkdir()
    for i in range(2):
        cv2.imwrite(str(gt / f'p{i}.png'), cv2.resize(rgb8(shift=i), (32, 24), interpolation=cv2.INTER_CUBIC))
    before = files(gt)
    monkeypatch.chdir(tmp_path)
    for out in ['gt', './gt/', str(gt)]:
        assert run(net, 'lr', out, '--compare', 'gt') == 2, out
        err = capsys.readouterr().err
        assert 'ground truth' in err and 'Traceback' not in err
    assert files(gt) == before


def test_a_users_write_test_file_is_kept(net, tmp_path):
    photos(tmp_path / 'in', 1)
    out = tmp_path / 'out'
    out.mkdir()
    (out / '.write-test').write_bytes(b'my notes')
    assert run(net, tmp_path / 'in', out) == 0
    assert (out / '.write-test').read_bytes() == b'my notes'
    assert sorted(p.name for p in out.iterdir()) == ['.write-test', 'p0.png']  # no probe file left either


# ---- inputs are enumerated and read in bounded time and memory -------------------------------------------------

def test_fifo_in_the_input_folder_is_skipped_with_a_message(net, tmp_path, capsys):
    src = tmp_path / 'in'
    photos(src, 1)
    os.mkfifo(src / 'pipe.png')
    assert [p.name for p, _ in list_inputs(str(src))] == ['p0.png']  # listed before anything could block
    assert [p.name for p, _ in list_inputs(str(src / '*.png'))] == ['p0.png']
    assert run(net, src, tmp_path / 'out') == 0
    assert 'pipe.png' in capsys.readouterr().err
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['p0.png']
    assert run(net, src / 'pipe.png', tmp_path / 'out2') == 2
    assert 'not a regular file' in capsys.readouterr().err


def test_a_symlink_loop_gives_one_output_per_file(net, tmp_path, capsys):
    src = tmp_path / 'in'
    photos(src, 1)
    (src / 'loop').symlink_to(src, target_is_directory=True)
    (src / 'alias.png').symlink_to(src / 'p0.png')
    for spec in [str(src / '**' / '*.png'), str(src)]:
        assert [p.name for p, _ in list_inputs(spec)] == ['p0.png'], spec
    assert run(net, str(src / '**' / '*.png'), tmp_path / 'out') == 0
    assert files(tmp_path / 'out').keys() == {'p0.png'}


def test_a_glob_through_two_symlink_loops_is_enumerated_quickly(tmp_path):
    src = tmp_path / 'in'
    photos(src, 1)
    (src / 'a').symlink_to(src, target_is_directory=True)
    (src / 'b').symlink_to(src, target_is_directory=True)  # 2**40 paths through the two loops
    code = ('import sys; from esc_basicsr.utils.output_paths import list_inputs; '
            'print(len(list_inputs(sys.argv[1])))')
    res = subprocess.run([sys.executable, '-c', code, str(src / '**' / '*.png')], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == '1', res.stderr


def big_png(path: Path, width: int, height: int) -> None:
    """A valid, all-black ``width x height`` RGB PNG written row by row (no large array)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    packer, row, parts = zlib.compressobj(9), b'\0' * (1 + 3 * width), []
    for _ in range(height):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
                     + chunk(b'IDAT', b''.join(parts)) + chunk(b'IEND', b''))


def test_an_image_too_large_for_the_memory_fails_alone_before_decoding(net, tmp_path, monkeypatch, capsys):
    src = tmp_path / 'in'
    photos(src, 1)
    big_png(src / 'huge.png', 12000, 12000)  # ~0.5 MB, under the pixel limit, 1.7 GB as float32
    assert (src / 'huge.png').stat().st_size < 1_000_000
    monkeypatch.setattr(memory_check, 'available_memory', lambda: 2 << 30)  # a 2 GB machine
    decoded = []
    real_decode = cv2.imdecode
    monkeypatch.setattr(cv2, 'imdecode', lambda buf, flags: decoded.append(len(buf)) or real_decode(buf, flags))
    assert run(net, src, tmp_path / 'out') == 1
    err = capsys.readouterr().err
    assert 'huge.png' in err and 'memory' in err and '--tile' in err and 'Traceback' not in err
    assert files(tmp_path / 'out').keys() == {'p0.png'}
    assert len(decoded) == 1  # only p0.png was decoded


def test_memory_error_is_that_images_error_and_the_batch_goes_on(net, tmp_path, monkeypatch, capsys):
    src = tmp_path / 'in'
    photos(src, 3)
    real = image_io.read_image

    def read_image(path, *args, **kwargs):
        if Path(path).name == 'p1.png':
            raise MemoryError()
        return real(path, *args, **kwargs)

    monkeypatch.setattr(image_io, 'read_image', read_image)
    assert run(net, src, tmp_path / 'out') == 1
    err = capsys.readouterr().err
    assert 'p1.png' in err and 'memory' in err.lower() and 'Traceback' not in err
    assert files(tmp_path / 'out').keys() == {'p0.png', 'p2.png'}


@pytest.mark.parametrize('ext', ['png', 'webp'])
def test_animated_images_are_refused_not_cut_to_their_first_frame(net, tmp_path, capsys, ext):
    src = tmp_path / 'in'
    photos(src, 1)
    frames = [PILImage.fromarray(rgb8(shift=i)) for i in range(3)]
    frames[0].save(src / f'anim.{ext}', save_all=True, append_images=frames[1:], duration=100,
                   **({'lossless': True} if ext == 'webp' else {}))
    assert run(net, src, tmp_path / 'out') == 1
    err = capsys.readouterr().err
    assert f'anim.{ext}' in err and 'animated' in err and '3 frames' in err
    assert files(tmp_path / 'out').keys() == {'p0.png'}


def test_non_finite_output_fails_per_image(net, tmp_path, capsys):
    from esc_basicsr.tools.loading import build_network

    photos(tmp_path / 'in', 1)
    torch.manual_seed(0)
    model = build_network(TINY)
    with torch.no_grad():
        model.to_img.weight.mul_(1e38)  # finite weights whose output overflows
        model.to_img.bias.fill_(1e38)
        model.last.weight.mul_(1e30)
        model.last.bias.fill_(3e38)
    torch.save({'params': model.state_dict()}, tmp_path / 'overflow.pth')
    assert run(net, tmp_path / 'in', tmp_path / 'out', weights=str(tmp_path / 'overflow.pth')) == 1
    err = capsys.readouterr().err
    assert 'p0.png' in err and ('NaN' in err or 'inf' in err)
    assert not (tmp_path / 'out' / 'p0.png').exists()


# ---- Ctrl-C -----------------------------------------------------------------------------------------------------

def test_ctrl_c_prints_what_was_written_and_exits_130(net, tmp_path, monkeypatch, capsys):
    src = tmp_path / 'in'
    photos(src, 3)
    real = infer_module.process_batch
    calls = []

    def process_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(infer_module, 'process_batch', process_batch)
    try:
        code = run(net, src, tmp_path / 'out')
    except KeyboardInterrupt:
        pytest.fail('KeyboardInterrupt escaped infer.main (a traceback for the user)')
    assert code == 130
    err = capsys.readouterr().err
    assert 'interrupted' in err and '1 image(s) written' in err and '2 not' in err and 'Traceback' not in err
    assert files(tmp_path / 'out').keys() == {'p0.png'}


# ---- BasicSR's own architectures --------------------------------------------------------------------------------

def test_basicsr_swinir_on_an_image_smaller_than_its_window(tmp_path):
    from esc_basicsr.tools.loading import build_network

    swinir = dict(type='SwinIR', upscale=2, in_chans=3, img_size=16, window_size=8, img_range=1.0, depths=[2],
                  embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler='pixelshuffledirect')
    torch.manual_seed(0)
    model = build_network(swinir).eval()
    torch.save({'params': model.state_dict()}, tmp_path / 'swinir.pth')
    (tmp_path / 'swinir.yml').write_text(yaml.safe_dump({'scale': 2, 'network_g': swinir}))
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'small.png'), rgb8(5, 6))
    cv2.imwrite(str(src / 'odd.png'), rgb8(13, 21))
    assert infer(['-i', str(src), '-o', str(tmp_path / 'out'), '--weights', str(tmp_path / 'swinir.pth'),
                  '--opt', str(tmp_path / 'swinir.yml'), '--device', 'cpu', '--quiet']) == 0
    assert cv2.imread(str(tmp_path / 'out' / 'small.png')).shape == (10, 12, 3)
    assert cv2.imread(str(tmp_path / 'out' / 'odd.png')).shape == (26, 42, 3)
