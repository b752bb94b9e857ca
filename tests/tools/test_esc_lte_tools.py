"""ESC-LTE in the command-line tools: ``python -m esc_basicsr.infer --scale 2.5`` (whole image and
tiled), its argument and checkpoint errors, ``python -m esc_basicsr.export`` at a scale, and a benchmark row."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import onnx
import pytest
import torch
import yaml
from skimage import data as skdata

import esc_basicsr  # noqa: F401
from esc_basicsr import benchmark, export, infer
from esc_basicsr.archs.esc_arch import ESC
from esc_basicsr.archs.esc_lte_arch import ESCLTE
from esc_basicsr.layers.lte import scaled_size

from tests.conftest import REPO
from tests.conftest import TINY_ESC_LTE as TINY


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('lte_tools')
    opt = yaml.safe_load((REPO / 'options' / 'train_ESC_LTE.yml').read_text())
    opt['network_g'].update(TINY)
    (root / 'lte.yml').write_text(yaml.safe_dump(opt))
    kwargs = {k: v for k, v in opt['network_g'].items() if k != 'type'}
    torch.manual_seed(0)
    net = ESCLTE(**kwargs)
    torch.save({'params': net.state_dict(), 'params_ema': net.state_dict()}, root / 'lte.pth')
    esc = {k: v for k, v in kwargs.items() if k not in ('hidden_dim', 'imnet_hidden')}
    torch.save({'params': ESC(**esc, upscaling_factor=2).state_dict()}, root / 'esc.pth')
    (root / 'in').mkdir()
    cv2.imwrite(str(root / 'in' / 'cat.png'), cv2.cvtColor(skdata.chelsea()[:21, :30], cv2.COLOR_RGB2BGR))
    return {'root': root, 'esc_kwargs': esc}


@pytest.mark.parametrize('tile', [0, 8])
def test_infer_at_2_5(setup, tile) -> None:
    root = setup['root']
    out = root / f'out_{tile}'
    code = infer.main(['-i', str(root / 'in'), '-o', str(out), '--opt', str(root / 'lte.yml'),
                       '--weights', str(root / 'lte.pth'), '--scale', '2.5', '--tile', str(tile), '--quiet'])
    assert code == 0
    sr = cv2.imread(str(out / 'cat.png'))
    assert sr.shape == (round(2.5 * 21), round(2.5 * 30), 3)  # 52 x 75


@pytest.mark.parametrize('scale', ['0', '-2', 'abc', 'inf'])
def test_infer_rejects_bad_scale(setup, scale, capsys) -> None:
    root = setup['root']
    with pytest.raises(SystemExit) as exc:
        infer.main(['-i', str(root / 'in'), '-o', str(root / 'bad'), '--opt', str(root / 'lte.yml'),
                    '--weights', str(root / 'lte.pth'), '--scale', scale])
    assert exc.value.code == 2
    assert 'argument --scale' in capsys.readouterr().err


def test_infer_non_integer_scale_needs_arbitrary_scale_network(setup, capsys) -> None:
    root = setup['root']
    args = ['-i', str(root / 'in'), '-o', str(root / 'bad'), '--weights', str(root / 'esc.pth'), '--quiet']
    assert infer.main(args + ['--model', 'esc_light', '--scale', '2.5']) == 2
    assert 'needs an arbitrary-scale network' in capsys.readouterr().err
    # the arbitrary-scale preset takes it (these tiny weights then do not fit the full preset)
    infer.main(['-i', str(root / 'in'), '-o', str(root / 'bad'), '--weights', str(root / 'lte.pth'), '--quiet',
                '--model', 'esc_lte', '--scale', '2.5'])
    assert 'needs an arbitrary-scale network' not in capsys.readouterr().err


def test_infer_checkpoint_kind_errors(setup, capsys) -> None:
    root = setup['root']
    base = ['-i', str(root / 'in'), '-o', str(root / 'bad'), '--quiet']
    assert infer.main(base + ['--opt', str(root / 'lte.yml'), '--weights', str(root / 'esc.pth')]) == 2
    assert 'ESCLTE got a fixed-scale checkpoint' in capsys.readouterr().err
    assert infer.main(base + ['--opt', str(root / 'lte.yml'), '--weights', str(root / 'esc.pth'),
                              '--scale', '2.5']) == 2
    assert 'ESC x2' in capsys.readouterr().err  # the weights' own scale, found before loading
    assert infer.main(base + ['--opt', str(root / 'lte.yml'), '--weights', str(root / 'lte.pth')]) == 2
    assert 'give one (--scale' in capsys.readouterr().err
    esc_opt = root / 'esc.yml'
    esc_opt.write_text(yaml.safe_dump({'scale': 2, 'network_g': dict(type='ESC', upscaling_factor=2,
                                                                      **setup['esc_kwargs'])}))
    assert infer.main(base + ['--opt', str(esc_opt), '--weights', str(root / 'lte.pth')]) == 2
    assert 'load it into ESCLTE' in capsys.readouterr().err


@pytest.mark.parametrize('scale', ['2', '2.5'])
def test_export_renders_at_the_given_scale(setup, scale, tmp_path, capsys) -> None:
    """From the weights alone and --scale: an image-to-image ONNX graph (dynamic batch, height, width) rendering
    at that scale, checked against PyTorch with onnxruntime at two sizes and batches; the deployed checkpoint."""
    path = tmp_path / 'lte.onnx'
    code = export.main(['--weights', str(setup['root'] / 'lte.pth'), '--scale', scale, '--onnx', str(path),
                        '-o', str(tmp_path / 'lte_deploy.pth')])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f'renders x{scale}, dynamic batch, height, width' in out.out
    checks = re.findall(r'input (\d+)x3x(\d+)x(\d+) -> (\d+)x3x(\d+)x(\d+): max abs diff ([0-9.e+-]+)', out.out)
    assert len(checks) == 2 and {c[0] for c in checks} == {'1', '2'}
    for b, h, w, ob, oh, ow, diff in checks:
        assert (ob, int(oh), int(ow)) == (b, *scaled_size(int(h), int(w), float(scale))) and float(diff) < 1e-4
    dims = [d.dim_param for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and dims[2] and dims[3]  # named, i.e. dynamic
    assert torch.load(tmp_path / 'lte_deploy.pth', weights_only=True)['network_g']['type'] == 'ESCLTE'


def test_export_scale_errors(setup, tmp_path, capsys) -> None:
    root = setup['root']
    assert export.main(['--weights', str(root / 'lte.pth'), '--onnx', str(tmp_path / 'x.onnx')]) == 2
    assert 'give one (--scale' in capsys.readouterr().err
    assert export.main(['--weights', str(root / 'esc.pth'), '--scale', '2.5', '--onnx', str(tmp_path / 'x.onnx')]) == 2
    assert 'error: ' in capsys.readouterr().err
    assert not (tmp_path / 'x.onnx').exists()


def test_benchmark_row(tmp_path) -> None:
    arch = 'ESCLTE:' + json.dumps(TINY)
    out = tmp_path / 'rows.json'
    code = benchmark.main(['--models', '--basicsr-arch', arch, '--device', 'cpu', '--lr-size', '12x16',
                           '--scale', '3', '--repeats', '1', '--warmup', '0', '--no-isolate', '--json', str(out)])
    assert code == 0
    row = json.loads(out.read_text())['results'][0]
    assert row['arch'] == 'ESCLTE' and row['params'] == sum(p.numel() for p in ESCLTE(**TINY).parameters())
    assert row['latency_ms'] > 0 and row['macs'] > 0
