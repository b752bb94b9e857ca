"""The command-line tools with weights alone (the network detected from the state_dict): infer, export and
benchmark, and their errors when a scale or an option file disagrees with the weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esc_basicsr.archs import ESC


@pytest.fixture()
def tiny_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = ESC(dim=16, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=4, num_heads=2,
                upscaling_factor=2, exp_ratio=1.5)
    path = tmp_path / 'tiny_x2.pth'
    torch.save({'params_ema': {f'module.{k}': v for k, v in model.state_dict().items()}}, path)
    return path


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    import cv2
    import numpy as np

    path = tmp_path / 'in.png'
    cv2.imwrite(str(path), (np.random.default_rng(0).random((10, 12, 3)) * 255).astype(np.uint8))
    return path


def test_infer_with_weights_only(tiny_checkpoint: Path, image: Path, tmp_path: Path) -> None:
    import cv2

    from esc_basicsr.infer import main

    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--weights', str(tiny_checkpoint), '--quiet']) == 0
    assert cv2.imread(str(tmp_path / 'out' / 'in.png')).shape == (20, 24, 3)


@pytest.mark.parametrize('tool', ['infer', 'export', 'benchmark'])
def test_scale_disagreeing_with_the_weights_is_an_error(tool: str, tiny_checkpoint: Path, image: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import importlib

    main = importlib.import_module(f'esc_basicsr.{tool}').main
    args = {'infer': ['-i', str(image), '-o', str(tmp_path / 'out'), '--quiet'],
            'export': ['-o', str(tmp_path / 'dep.pth')], 'benchmark': ['--no-timing', '--no-macs']}[tool]
    assert main([*args, '--weights', str(tiny_checkpoint), '--scale', '4']) == 2
    err = capsys.readouterr().err
    assert 'x4' in err and 'ESC x2' in err
    assert not (tmp_path / 'out' / 'in.png').exists() and not (tmp_path / 'dep.pth').exists()


def test_option_file_scale_disagreeing_with_the_weights(tiny_checkpoint: Path, image: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    import yaml

    from esc_basicsr.infer import main

    opt = tmp_path / 'opt.yml'
    network_g = dict(type='ESC', dim=16, pdim=8, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=4,
                     num_heads=2, upscaling_factor=3, exp_ratio=1.5)
    opt.write_text(yaml.safe_dump({'scale': 3, 'network_g': network_g}))
    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--weights', str(tiny_checkpoint),
                 '--opt', str(opt), '--quiet']) == 2
    assert 'x3' in capsys.readouterr().err


def test_export_and_benchmark_with_weights_only(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import json

    from esc_basicsr.benchmark import main as benchmark
    from esc_basicsr.export import main as export
    from esc_basicsr.tools.loading import load_network

    deployed = tmp_path / 'dep.pth'
    assert export(['--weights', str(tiny_checkpoint), '-o', str(deployed)]) == 0
    loaded = load_network(deployed)  # the deployed meta path still works
    assert loaded.scale == 2 and loaded.network_g['dim'] == 16
    out = tmp_path / 'b.json'
    assert benchmark(['--weights', str(tiny_checkpoint), '--no-timing', '--no-macs', '--no-isolate',
                      '--json', str(out)]) == 0
    rows = json.loads(out.read_text())['results']
    assert [r['arch'] for r in rows] == ['ESC'] and rows[0]['scale'] == 2


def test_unrecognised_weights_without_description(tmp_path: Path, image: Path, capsys: pytest.CaptureFixture) -> None:
    from esc_basicsr.infer import main

    path = tmp_path / 'conv.pth'
    torch.save(torch.nn.Conv2d(3, 3, 3).state_dict(), path)
    assert main(['-i', str(image), '-o', str(tmp_path / 'out'), '--weights', str(path), '--quiet']) == 2
    err = capsys.readouterr().err
    assert 'not recognised' in err and 'ESCRealM' in err
