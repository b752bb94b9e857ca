"""Issues 26 and 27, ``benchmark`` and ``export``: no output over an input, impossible numbers and hostile JSON
refused at parsing in one line (exit 2), bad weights and unwritable folders found before any work, an export
that fails writes nothing, a scale the weights do not have is never deployed, and both tools name a network alike.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import zipfile

import pytest
import torch

from esc_basicsr import benchmark, export
from esc_basicsr.archs.esc_lte_arch import ESCLTE
from esc_basicsr.archs.presets import display_name
from esc_basicsr.tools.benchmark_plan import lr_size
from esc_basicsr.tools.cli import output_scale

from ..conftest import TINY_ESC_LTE
from .test_export_prepare_faults import exit_code, one_line_error

TINY_ESC = ('{"dim": 16, "pdim": 8, "kernel_size": 13, "n_blocks": 1, "conv_blocks": 1, "window_size": 8, '
            '"num_heads": 2}')
# one quick in-process row: MACs and parameters only
QUICK = ['--device', 'cpu', '--models', '--basicsr-arch', f'ESC:{TINY_ESC}', '--lr-size', '8x8', '--no-isolate']


# ---- benchmark -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('flag', ['--json', '--csv', '--plot'])
def test_benchmark_never_writes_over_its_weights(net, tmp_path, capsys, flag):
    weights = tmp_path / 'W.pth'
    weights.write_bytes(open(net['weights'], 'rb').read())
    before = weights.read_bytes()
    assert exit_code(benchmark.main, ['--device', 'cpu', '--no-timing', '--weights', str(weights),
                                      flag, str(tmp_path / '.' / 'W.pth')]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert flag in line and '--weights' in line
    assert weights.read_bytes() == before


@pytest.mark.parametrize('flag, value', [('--repeats', '0'), ('--repeats', '-1'), ('--rounds', '0'),
                                         ('--warmup', '-1'), ('--threads', '-1'), ('--threads', '0'),
                                         ('--timeout', '-1'), ('--timeout', '0'), ('--timeout', 'nan'),
                                         ('--scale', '0'), ('--scale', '-3'), ('--scale', '33'),
                                         ('--batch-size', '0'), ('--patch', '-2'), ('--repeats', '1.5')])
def test_benchmark_refuses_impossible_numbers_at_parsing(capsys, flag, value):
    assert exit_code(benchmark.main, QUICK + ['--no-timing', flag, value]) == 2
    err = capsys.readouterr().err
    assert f'argument {flag}' in one_line_error(err) and '[1/' not in err  # nothing ran


@pytest.mark.parametrize('flags', [['--rounds', '2'], ['--timeout', '5']])
def test_benchmark_refuses_repetition_flags_it_would_ignore(capsys, flags):
    """--rounds and --timeout act on isolated timed runs: with --no-isolate they would do nothing."""
    assert exit_code(benchmark.main, QUICK + ['--repeats', '1', '--warmup', '0', *flags]) == 2
    assert flags[0] in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize('length', [100_000, 40])  # too long; short but deeper than MAX_JSON_DEPTH
@pytest.mark.parametrize('flag', ['--basicsr-arch', '--flex-kernel-options'])
def test_benchmark_deep_json_is_one_line(capsys, flag, length):
    """100,000 ``[`` made json recurse into a RecursionError traceback; a short deep nesting is refused too."""
    value = ('EDSR:' if flag == '--basicsr-arch' else '') + '[' * length
    assert exit_code(benchmark.main, ['--device', 'cpu', '--no-timing', '--models', 'esc', flag, value]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert flag in line and len(line) < 400


def test_json_argument_bounds():
    from esc_basicsr.tools.cli import MAX_JSON_DEPTH, json_argument

    inside = '{"a": "' + '[' * 100 + '\\" {{{"}'  # brackets (and an escaped quote) in a string do not nest
    assert json_argument(inside, 'x') == {'a': '[' * 100 + '" {{{'}
    assert json_argument('[' * MAX_JSON_DEPTH + ']' * MAX_JSON_DEPTH, 'x') is not None
    with pytest.raises(ValueError, match='nested more than'):
        json_argument('[' * (MAX_JSON_DEPTH + 1), '--x')
    with pytest.raises(ValueError, match='not JSON'):
        json_argument('{num_feat: 8}', '--x')


def _bad_weights(kind: str, folder, good: str) -> str:
    path = folder / f'{kind}.pth'
    if kind == 'pickle':
        path.write_bytes(pickle.dumps({'a': 1}, protocol=2))
    elif kind == 'zip':
        with zipfile.ZipFile(path, 'w') as z:
            z.writestr('x', 'y')
    elif kind == 'truncated':
        data = open(good, 'rb').read()
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'text':
        path.write_text('hello\n')
    else:  # a folder
        path.mkdir()
    return str(path)


@pytest.mark.parametrize('kind', ['pickle', 'zip', 'truncated', 'text', 'folder'])
def test_benchmark_bad_weights_are_one_line(net, tmp_path, capsys, kind):
    path = _bad_weights(kind, tmp_path, net['weights'])
    assert exit_code(benchmark.main, ['--device', 'cpu', '--no-timing', '--weights', path]) == 2
    assert path in one_line_error(capsys.readouterr().err)


def test_benchmark_checks_the_output_folder_before_running(tmp_path, capsys, monkeypatch):
    (tmp_path / 'file').write_text('mine')
    assert exit_code(benchmark.main, QUICK + ['--json', str(tmp_path / 'file' / 'sub' / 'r.json')]) == 2
    err = capsys.readouterr().err
    assert '--json' in one_line_error(err) and '[1/' not in err  # refused before the first row
    assert (tmp_path / 'file').read_text() == 'mine'

    real_open = os.open  # a read-only folder, also where the test runs as root: creating a file there fails

    def read_only(path, *args, **kwargs):
        if str(tmp_path / 'ro') in os.fspath(path):
            raise PermissionError(13, 'Permission denied', os.fspath(path))
        return real_open(path, *args, **kwargs)

    (tmp_path / 'ro').mkdir()
    monkeypatch.setattr(os, 'open', read_only)
    assert exit_code(benchmark.main, QUICK + ['--csv', str(tmp_path / 'ro' / 'r.csv')]) == 2
    err = capsys.readouterr().err
    line = one_line_error(err)
    assert 'r.csv' in line and 'Permission denied' in line and '[1/' not in err
    assert list((tmp_path / 'ro').iterdir()) == []


def test_benchmark_says_what_it_timed(capsys):
    """``--rounds 1`` printed 'median of 3' whatever was timed: the title says the passes actually run."""
    assert benchmark.main(QUICK + ['--no-macs', '--repeats', '1', '--warmup', '0']) == 0
    out = capsys.readouterr().out
    assert 'time: one timed pass after 0 warm-up passes, all in this process' in out and 'median of' not in out
    from esc_basicsr.tools.benchmark_plan import Plan, timing_text

    plan = Plan([], [], {'isolated': True}, (8, 8), warmup=1, repeats=3, rounds=2)
    assert timing_text(plan) == ('median of 3 timed passes after 1 warm-up pass; the median of 2 rounds of that '
                                 '(round-robin over the models), each model in a fresh process')


def test_benchmark_sizes_are_height_by_width():
    """--lr-size and --output-size both read HxW (the docs mixed WxH and HxW); the default is the paper's frame."""
    args = benchmark.build_parser().parse_args(['--output-size', '720x1280'])
    assert args.output_size == (720, 1280) == benchmark.build_parser().parse_args([]).output_size
    assert lr_size(None, args.output_size, 2) == (360, 640)
    assert lr_size(None, (720, 1280), 3) == (240, 427)
    assert lr_size(None, (100, 40), 4) == (25, 10)
    for action in benchmark.build_parser()._actions:
        if action.dest in ('output_size', 'lr_size'):
            assert action.metavar == 'HxW'


# ---- export ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def lte_weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('lte') / 'lte.pth'
    torch.manual_seed(0)
    torch.save({'params': ESCLTE(**TINY_ESC_LTE).state_dict()}, path)
    return str(path)


@pytest.mark.parametrize('scale', ['1e9', '33', '0.01', 'nan', 'inf', '0', '-1'])
def test_export_refuses_a_scale_out_of_bounds_before_any_work(lte_weights, tmp_path, capsys, scale):
    """``--scale 1e9`` asked for 168 GB, exited 1 and still wrote a checkpoint labelled x1000000000."""
    argv = ['--weights', lte_weights, '--scale', scale, '-o', str(tmp_path / 'd.pth'),
            '--onnx', str(tmp_path / 'm.onnx')]
    assert exit_code(export.main, argv) == 2
    assert '--scale' in one_line_error(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_infer_shares_the_scale_bound(lte_weights, tmp_path, capsys):
    """``infer`` takes its --scale from the same type: x40 is refused before an image is read."""
    import cv2
    import numpy as np

    from esc_basicsr import infer

    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    argv = ['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--weights', lte_weights, '--scale', '40']
    assert exit_code(infer.main, argv) == 2
    assert '--scale' in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()


def test_output_scale_bounds():
    assert output_scale('2') == 2 and output_scale('2.5') == 2.5 and output_scale('32') == 32
    assert output_scale('0.03125') == 1 / 32
    for text in ('32.5', '1e9', '0.03', '0', '-2', 'nan', 'inf', 'two'):
        with pytest.raises(argparse.ArgumentTypeError):
            output_scale(text)


def test_a_failed_export_writes_nothing(net, tmp_path, monkeypatch, capsys):
    """The deployed checkpoint was written before the ONNX graph failed its check: now neither is."""
    from esc_basicsr.tools import onnx_export

    monkeypatch.setattr(onnx_export, 'verify_onnx', lambda model, path, sizes: [
        {'size': tuple(s), 'output': (s[0], 3, 2 * s[2], 2 * s[3]), 'max_abs_diff': 0.5} for s in sizes])
    argv = ['--weights', net['weights'], '-o', str(tmp_path / 'd.pth'), '--onnx', str(tmp_path / 'm.onnx')]
    assert export.main(argv) == 1
    line = one_line_error(capsys.readouterr().err)
    assert 'nothing written' in line and 'differs' in line
    assert list(tmp_path.iterdir()) == []

    def failing(*args, **kwargs):
        raise onnx_export.ExportError('the torchscript ONNX exporter failed')

    monkeypatch.setattr(onnx_export, 'export_onnx', failing)
    assert export.main(argv) == 1
    assert 'nothing written' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_description_of_another_scale_than_the_weights(net, tmp_path, capsys):
    """A deployed checkpoint whose description says x4 over x2 weights was re-deployed as x4 (resized output layer)."""
    from esc_basicsr.archs.deploy import deploy
    from esc_basicsr.tools.loading import build_network, load_network, save_deployed

    network = load_network(net['weights'])
    save_deployed(tmp_path / 'lie.pth', network.model, dict(network.network_g, upscaling_factor=4), 4)
    out = tmp_path / 'out'
    assert export.main(['--weights', str(tmp_path / 'lie.pth'), '-o', str(out / 'd.pth'),
                        '--onnx', str(out / 'm.onnx')]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert 'x4' in line and 'x2' in line and 'lie.pth' in line
    assert not out.exists()
    # the same weights described truthfully are exported as they are
    save_deployed(tmp_path / 'true.pth', deploy(build_network(network.network_g)), network.network_g, 2)
    assert export.main(['--weights', str(tmp_path / 'true.pth'), '-o', str(out / 'd.pth')]) == 0
    assert '(ESC x2)' in capsys.readouterr().out


def test_export_names_the_network_as_infer_does(tmp_path, capsys):
    """Issue 26: export named ESC-light weights 'ESC x2' where infer says 'ESC-light x2'."""
    from esc_basicsr.archs import build

    torch.save({'params': build('esc_light', 2).state_dict()}, tmp_path / 'light.pth')
    assert export.main(['--weights', str(tmp_path / 'light.pth'), '-o', str(tmp_path / 'd.pth')]) == 0
    out = capsys.readouterr().out
    network_g = torch.load(tmp_path / 'd.pth', weights_only=True)['network_g']
    assert display_name(network_g) == 'ESC-light'
    assert f'deployed checkpoint: {tmp_path / "d.pth"} (ESC-light x2, type ESC)' in out


def test_benchmark_weights_rows_keep_working(net, tmp_path, capsys):
    """The checks above leave a good run alone: a --weights row with outputs beside the weights."""
    rc = benchmark.main(['--device', 'cpu', '--no-timing', '--weights', net['weights'],
                         '--json', str(tmp_path / 'r.json'), '--csv', str(tmp_path / 'r.csv')])
    assert rc == 0, capsys.readouterr()
    (row,) = json.loads((tmp_path / 'r.json').read_text())['results']
    assert row['label'] == 'net' and row['macs'] > 0
