"""``python -m esc_basicsr.infer``: layouts, names, corrupt inputs, tiling, batching (tiny ESC, CPU)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import esc_basicsr  # noqa: F401
from tests.conftest import load_fixture
from esc_basicsr.infer import main
from esc_basicsr.tools.loading import build_network
from esc_basicsr.tools.tiling import tile_alignment, tiled_forward
from esc_basicsr.utils.image_io import read_image
from esc_basicsr.utils.output_paths import list_inputs, output_path

TINY = dict(type='ESC', dim=16, pdim=8, kernel_size=13, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2,
            upscaling_factor=2)


def smooth(h: int, w: int) -> np.ndarray:
    """``(h, w, 3)`` float image in [0, 1] without high frequencies."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing='ij')
    return np.stack([0.5 + 0.4 * np.sin(3 * xx + 2 * yy), 0.5 + 0.4 * np.cos(2 * xx - yy), 0.3 + 0.5 * xx * yy], 2)


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp('infer')
    torch.manual_seed(0)
    model = build_network(TINY)
    with torch.no_grad():  # non-zero dynamic kernels, so that every part of the network matters
        for name, p in model.named_parameters():
            if 'dwc_proj.3' in name:
                p.normal_(0, 0.05)
    torch.save({'params': model.state_dict()}, root / 'net.pth')
    (root / 'opt.yml').write_text(yaml.safe_dump({'scale': 2, 'network_g': TINY}))
    src = root / 'in'
    (src / 'sub').mkdir(parents=True)
    rng = np.random.default_rng(0)
    rgb8 = (smooth(20, 24) * 255).round().astype(np.uint8)
    cv2.imwrite(str(src / 'rgb.png'), rgb8[:, :, ::-1])
    cv2.imwrite(str(src / 'gray.png'), rgb8[:, :, 0])
    rgba = np.concatenate([rgb8[:17, :13, ::-1], rng.integers(0, 256, (17, 13, 1), dtype=np.uint8)], 2)
    cv2.imwrite(str(src / 'sub' / 'rgba.png'), rgba)
    cv2.imwrite(str(src / 'sub' / 'deep.png'), (smooth(15, 18) * 65535).round().astype(np.uint16))
    (src / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n this is not a png')
    return {'root': root, 'src': src, 'model': model, 'weights': root / 'net.pth', 'opt': root / 'opt.yml'}


def run(setup: dict, out: Path, *extra: str, src: Path | None = None) -> int:
    return main(['-i', str(src or setup['src']), '-o', str(out), '--weights', str(setup['weights']),
                 '--opt', str(setup['opt']), '--device', 'cpu', '--quiet', *extra])


def test_layouts_names_and_corrupt_input(setup, tmp_path, capsys):
    out = tmp_path / 'out'
    assert run(setup, out, '--suffix', '_x2') == 1  # the corrupt file fails the run ...
    err = capsys.readouterr().err
    assert 'broken.png' in err and '4 image(s) written' in err and '1 failed' in err
    # ... but every other image is written, sub-folders mirrored, layout and depth kept
    rgb = cv2.imread(str(out / 'rgb_x2.png'), cv2.IMREAD_UNCHANGED)
    gray = cv2.imread(str(out / 'gray_x2.png'), cv2.IMREAD_UNCHANGED)
    rgba = cv2.imread(str(out / 'sub' / 'rgba_x2.png'), cv2.IMREAD_UNCHANGED)
    deep = cv2.imread(str(out / 'sub' / 'deep_x2.png'), cv2.IMREAD_UNCHANGED)
    assert rgb.shape == (40, 48, 3) and rgb.dtype == np.uint8
    assert gray.shape == (40, 48) and gray.dtype == np.uint8
    assert rgba.shape == (34, 26, 4) and rgba.dtype == np.uint8
    assert deep.shape == (30, 36, 3) and deep.dtype == np.uint16
    assert not (out / 'broken_x2.png').exists()

    # the colour output is the network's output on the [0, 1] RGB input
    img = read_image(setup['src'] / 'rgb.png')
    with torch.no_grad():
        ref = setup['model'].eval()(torch.from_numpy(img.rgb).permute(2, 0, 1)[None]).clamp(0, 1)
    ref8 = (ref[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round()
    assert np.abs(rgb.astype(float) - ref8).max() <= 1
    # alpha: bicubic upscaling of the input alpha
    alpha = cv2.imread(str(setup['src'] / 'sub' / 'rgba.png'), cv2.IMREAD_UNCHANGED)[:, :, 3]
    bicubic = np.clip(cv2.resize(alpha.astype(np.float32) / 255, (26, 34), interpolation=cv2.INTER_CUBIC), 0, 1)
    assert np.abs(rgba[:, :, 3] / 255 - bicubic).max() <= 1 / 255 + 1e-6
    # 16-bit output really uses 16 bits (not an 8-bit image scaled up)
    assert np.any(deep % 257 != 0)


def test_alpha_through_the_model(setup, tmp_path):
    out = tmp_path / 'out'
    assert run(setup, out, '--alpha', 'model', src=setup['src'] / 'sub' / 'rgba.png') == 0
    assert cv2.imread(str(out / 'rgba.png'), cv2.IMREAD_UNCHANGED).shape == (34, 26, 4)


def test_tiled_forward_close_to_whole_image(setup):
    model = setup['model'].eval()
    x = torch.from_numpy(smooth(48, 40)).float().permute(2, 0, 1)[None]
    assert tile_alignment(model) == 8
    with torch.no_grad():
        whole = model(x)
        tiled = tiled_forward(model, x, 2, tile=16, tile_pad=16, align=8)
        same = tiled_forward(model, x, 2, tile=64, tile_pad=16, align=8)  # one tile = whole image
    assert tiled.shape == whole.shape == (1, 3, 96, 80)
    assert (tiled - whole).abs().max() < 1 / 255
    assert torch.equal(same, whole)


def test_tiling_and_batching_in_the_command(setup, tmp_path):
    src = tmp_path / 'same_size'
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f'{i}.png'), (np.roll(smooth(40, 36), i, axis=1) * 255).round().astype(np.uint8))
    assert run(setup, tmp_path / 'whole', src=src) == 0
    assert run(setup, tmp_path / 'tiled', '--tile', '16', '--tile-pad', '16', '--batch-size', '2', src=src) == 0
    for i in range(3):
        whole = cv2.imread(str(tmp_path / 'whole' / f'{i}.png')).astype(int)
        tiled = cv2.imread(str(tmp_path / 'tiled' / f'{i}.png')).astype(int)
        assert np.abs(whole - tiled).max() <= 1


def test_bf16_on_the_cpu(setup, tmp_path):
    src = setup['src'] / 'rgb.png'
    assert run(setup, tmp_path / 'fp32', src=src) == 0
    assert run(setup, tmp_path / 'bf16', '--bf16', src=src) == 0
    fp32 = cv2.imread(str(tmp_path / 'fp32' / 'rgb.png')).astype(int)
    bf16 = cv2.imread(str(tmp_path / 'bf16' / 'rgb.png')).astype(int)
    assert np.abs(fp32 - bf16).max() <= 4


def test_glob_input_and_output_extension(setup, tmp_path):
    pattern = str(setup['src'] / '**' / 'r*.png')
    out = tmp_path / 'out'
    assert run(setup, out, '--ext', 'bmp', src=Path(pattern)) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*')
                  if p.is_file()) == ['rgb.bmp', 'sub/rgba.bmp']


def test_preset_elan_takes_unit_range_images(tmp_path):
    """``--model elan_light`` runs the authors' [0, 255] ELAN on [0, 1] images (reference fixture)."""
    fix = load_fixture('elan_light_x4.pt')
    torch.save({'params': fix['state_dict']}, tmp_path / 'elan.pth')
    img = fix['input'][0].permute(1, 2, 0).clamp(0, 255).round().numpy().astype(np.uint8)[:8, :12]
    cv2.imwrite(str(tmp_path / 'a.png'), img[:, :, ::-1])
    rc = main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--weights', str(tmp_path / 'elan.pth'),
               '--model', 'elan_light', '--scale', '4', '--device', 'cpu', '--quiet'])
    assert rc == 0
    authors = build_network(dict(type='ELAN', **fix['kwargs'])).eval()  # input and output in [0, 255]
    authors.load_state_dict(fix['state_dict'])
    with torch.no_grad():
        ref = authors(torch.from_numpy(img).float().permute(2, 0, 1)[None]).clamp(0, 255)[0].permute(1, 2, 0)
    out = cv2.imread(str(tmp_path / 'out' / 'a.png'))[:, :, ::-1].astype(float)
    assert out.shape == (32, 48, 3)
    assert np.abs(out - ref.numpy()).max() <= 1.01


def test_argument_errors(setup, tmp_path, capsys):
    assert run(setup, tmp_path / 'o', '--fp16') == 2
    assert 'fp16 needs a CUDA device' in capsys.readouterr().err
    torch.save({'params': {'foo.weight': torch.zeros(3)}}, tmp_path / 'odd.pth')  # not detectable from weights
    assert main(['-i', str(setup['src']), '-o', str(tmp_path / 'o'), '--weights', str(tmp_path / 'odd.pth')]) == 2
    assert 'no network description' in capsys.readouterr().err
    assert run(setup, tmp_path / 'o', src=tmp_path / 'missing') == 2


def test_list_inputs_and_output_names(setup):
    names = [rel.as_posix() for _, rel in list_inputs(str(setup['src']))]
    assert names == ['broken.png', 'gray.png', 'rgb.png', 'sub/deep.png', 'sub/rgba.png']
    assert output_path('o', Path('sub/a.png'), '_x2') == Path('o/sub/a_x2.png')
    assert output_path('o', Path('a.png'), '', 'jpg') == Path('o/a.jpg')


def test_speed_settings(setup, tmp_path, capsys):
    """--low-rank-bias at a tolerance below float32 noise and --compile (aot_eager on the CPU) write the images the
    default run writes, for inputs of several sizes; --cuda-graphs is refused on the CPU before anything runs."""
    assert run(setup, tmp_path / 'default') == 1  # broken.png fails in every run
    assert run(setup, tmp_path / 'low_rank', '--low-rank-bias', '1e-5') == 1
    assert 'note: low-rank bias: ranks 64 of 64' in capsys.readouterr().err
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    assert run(setup, tmp_path / 'compiled', '--compile', '--compile-backend', 'aot_eager') == 1
    assert counters['stats']['unique_graphs'] >= 1  # the network ran compiled
    torch._dynamo.reset()
    for name in ('rgb.png', 'gray.png', 'sub/rgba.png', 'sub/deep.png'):
        default = cv2.imread(str(tmp_path / 'default' / name), cv2.IMREAD_UNCHANGED).astype(int)
        for other in ('low_rank', 'compiled'):
            other_image = cv2.imread(str(tmp_path / other / name), cv2.IMREAD_UNCHANGED).astype(int)
            assert np.abs(other_image - default).max() <= 1
    assert run(setup, tmp_path / 'o', '--cuda-graphs') == 2
    assert '--cuda-graphs needs a CUDA device' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('variable, value, extra, message', [
    ('ESC_BASICSR_ATTN', 'bogus', (), "error: ESC_BASICSR_ATTN='bogus': expected one of auto, naive, sdpa, flex"),
    ('ESC_BASICSR_FLEX_KERNEL_OPTIONS', '{"BLOCK_M": [64', ('--attn', 'flex'),
     "error: ESC_BASICSR_FLEX_KERNEL_OPTIONS='{\"BLOCK_M\": [64' is not JSON"),
    ('ESC_BASICSR_CHANNELS_LAST', 'maybe', (), "error: ESC_BASICSR_CHANNELS_LAST='maybe': expected 1 or 0"),
    ('ESC_BASICSR_FLEX_KERNEL_OPTIONS', '[' * 100_000, (),  # a RecursionError traceback in json.loads before
     "error: ESC_BASICSR_FLEX_KERNEL_OPTIONS='[[[["),
])
def test_bad_environment_override_is_one_refusal_before_any_work(setup, tmp_path, capsys, monkeypatch, variable,
                                                                 value, extra, message):
    """Issue 27: was a failure per image (exit 1) whose message never named the variable."""
    from esc_basicsr.layers import config

    monkeypatch.setenv(variable, value)
    try:
        assert run(setup, tmp_path / 'out', *extra) == 2
    finally:
        monkeypatch.delenv(variable)
        for read in (config.attn_override, config.channels_last_override, config.flex_kernel_options):
            read.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('value', ['[' * 100_000, '[' * 40 + ']' * 40, '{"BLOCK_M": ' + '[' * 5000 + ']' * 5000 + '}'])
def test_deep_flex_kernel_options_are_one_short_line(setup, tmp_path, capsys, value):
    """Issue 27: a 100,000-deep ``[`` made json recurse (RecursionError traceback); every refusal of the flag
    is one bounded line, exit 2, nothing written."""
    assert run(setup, tmp_path / 'out', '--flex-kernel-options', value) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: --flex-kernel-options=') and len(err[0]) < 400, err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('tolerance', ['0', '1e-300'])
def test_refused_low_rank_bias_leaves_no_output_folder(setup, tmp_path, capsys, tolerance):
    """Issue 27: a tolerance float32 factors cannot meet is refused (exit 2) with nothing written, not even
    an empty output folder."""
    assert run(setup, tmp_path / 'out', '--low-rank-bias', tolerance) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and 'tolerance' in err[0], err
    assert not (tmp_path / 'out').exists()
