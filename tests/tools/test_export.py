"""``python -m esc_basicsr.export``: deployed checkpoints and dynamic-size ONNX parity (tiny networks, CPU)."""
from __future__ import annotations

import re

import onnx
import pytest
import torch
import yaml

import esc_basicsr  # noqa: F401
from esc_basicsr.archs.deploy import deploy
from esc_basicsr.export import main
from esc_basicsr.tools.loading import build_network, load_network
from esc_basicsr.tools.onnx_export import ExportError, check_exportable, export_onnx, verify_onnx

TINY_ESC = dict(type='ESC', dim=16, pdim=8, kernel_size=13, n_blocks=1, conv_blocks=2, window_size=8, num_heads=2,
                upscaling_factor=2)
TINY_ELAN = dict(type='ELAN', scale=3, rgb_range=255, m_elan=2, c_elan=12, n_share=1, window_sizes=[4, 8, 16],
                 input_range=1.0)


def randomized(network_g: dict, seed: int = 0) -> torch.nn.Module:
    """Training-form model whose dynamic kernels and BatchNorm statistics are non-trivial."""
    torch.manual_seed(seed)
    model = build_network(network_g)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'dwc_proj.3' in name:
                p.normal_(0, 0.05)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return model.eval()


def test_unexportable_attention_is_explained():
    for attn in ('flex', 'auto'):
        with pytest.raises(ExportError, match='sdpa'):
            check_exportable(build_network(TINY_ESC, attn_type=attn))


@pytest.mark.parametrize('attn', ['naive'])  # sdpa, every architecture: tests/archs/test_table_harness.py
def test_onnx_parity_at_two_sizes_and_batches(attn, tmp_path):
    model = deploy(randomized(dict(TINY_ESC, attn_type=attn)))
    path = str(tmp_path / 'esc.onnx')
    export_onnx(model, path, (2, 3, 21, 19))
    graph = onnx.load(path).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1] == 3 and isinstance(dims[2], str) and isinstance(dims[3], str)
    # other sizes than the traced one, batch 1 and 3, and an input smaller than half a window
    results = verify_onnx(model, path, [(1, 3, 30, 17), (3, 3, 9, 40), (1, 3, 2, 3)])
    assert [r['output'] for r in results] == [(1, 3, 60, 34), (3, 3, 18, 80), (1, 3, 4, 6)]
    assert max(r['max_abs_diff'] for r in results) < 1e-4


def test_export_command_checkpoint_and_onnx(tmp_path, capsys):
    model = randomized(TINY_ESC)
    torch.save({'params_ema': model.state_dict(), 'params': {}}, tmp_path / 'net.pth')
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': TINY_ESC}))
    rc = main(['--opt', str(tmp_path / 'opt.yml'), '--weights', str(tmp_path / 'net.pth'),
               '-o', str(tmp_path / 'deployed.pth'), '--onnx', str(tmp_path / 'esc.onnx')])
    out = capsys.readouterr().out
    assert rc == 0, out
    diffs = [float(d) for d in re.findall(r'max abs diff ([0-9.e+-]+)', out)]
    assert len(diffs) == 2 and max(diffs) < 1e-4
    # the deployed checkpoint: plain data, folded kernel, enough to rebuild the network alone
    ckpt = torch.load(tmp_path / 'deployed.pth', weights_only=True)
    assert ckpt['deployed'] is True and ckpt['network_g'] == TINY_ESC and ckpt['scale'] == 2
    net = load_network(tmp_path / 'deployed.pth')
    x = torch.rand(1, 3, 12, 20)
    with torch.no_grad():
        assert torch.allclose(net.model(x), model(x), atol=1e-5)


def test_deployed_elan_round_trip_and_onnx(tmp_path, capsys):
    model = randomized(TINY_ELAN)
    torch.save({'params': model.state_dict()}, tmp_path / 'elan.pth')
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': TINY_ELAN}))
    assert main(['--opt', str(tmp_path / 'opt.yml'), '--weights', str(tmp_path / 'elan.pth'),
                 '-o', str(tmp_path / 'deployed.pth')]) == 0
    ckpt = torch.load(tmp_path / 'deployed.pth', weights_only=True)
    assert not any('project_inp.1' in k for k in ckpt['params'])  # BatchNorm folded away
    # the deployed checkpoint alone is enough for export (and inference)
    rc = main(['--weights', str(tmp_path / 'deployed.pth'), '--onnx', str(tmp_path / 'elan.onnx')])
    out = capsys.readouterr().out
    assert rc == 0, out
    net = load_network(tmp_path / 'deployed.pth')
    x = torch.rand(2, 3, 13, 22)
    with torch.no_grad():
        assert torch.allclose(net.model(x), model(x), atol=1e-4)
    assert max(r['max_abs_diff'] for r in verify_onnx(net.model, str(tmp_path / 'elan.onnx'),
                                                      [(1, 3, 7, 30), (2, 3, 21, 5)])) < 1e-4


def test_export_command_errors(tmp_path, capsys):
    model = randomized(TINY_ESC)
    torch.save(model.state_dict(), tmp_path / 'bare.pth')
    torch.save({'foo.weight': torch.zeros(3)}, tmp_path / 'odd.pth')  # not detectable from weights
    assert main(['--weights', str(tmp_path / 'odd.pth'), '-o', str(tmp_path / 'x.pth')]) == 2
    assert 'no network description' in capsys.readouterr().err
    assert main(['--weights', str(tmp_path / 'bare.pth'), '--model', 'esc', '--scale', '2']) == 2
    assert 'nothing to write' in capsys.readouterr().err


def test_trace_and_verify_sizes_avoid_the_tables_grid(tmp_path, monkeypatch, capsys):
    """ESCRealM at x1 runs its trunk on the input unshuffled by 4: its window of 8 is a grid of 32 input pixels
    (the table's input multiple), not the 8 found on its modules; the traced and checked sizes avoid it."""
    from esc_basicsr.archs.table import network_input_multiple
    from esc_basicsr.tools import onnx_export

    from ..helpers.arch_cases import small_case

    network_g = {'type': 'ESCRealM', **small_case('ESCRealM').kwargs()}
    grid = network_input_multiple(network_g)
    assert grid == 4 * network_g['window_size'] and network_g['upscaling_factor'] == 1
    torch.save(build_network(network_g).state_dict(), tmp_path / 'realm.pth')
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': network_g}))
    sizes = {}

    def export(model, path, size, **kwargs):
        sizes['trace'] = size
        open(path, 'wb').close()

    monkeypatch.setattr(onnx_export, 'export_onnx', export)
    monkeypatch.setattr(onnx_export, 'verify_onnx', lambda model, path, verify: sizes.update(verify=verify) or [])
    assert main(['--opt', str(tmp_path / 'opt.yml'), '--weights', str(tmp_path / 'realm.pth'),
                 '--onnx', str(tmp_path / 'realm.onnx')]) == 0, capsys.readouterr()
    assert sizes['trace'] == (2, 3, 2 * grid + 5, grid + 11)
    assert sizes['verify'] == [(1, 3, grid + 7, 2 * grid + 3), (2, 3, 2 * grid + 9, grid - 5)]


@pytest.mark.slow
def test_dynamo_exporter(tmp_path):
    from esc_basicsr.layers import attention_backends
    model = deploy(randomized(dict(TINY_ESC, conv_blocks=1, attn_type='sdpa')))
    path = str(tmp_path / 'esc.onnx')
    # empty caches get filled during the export with fake tensors, which must not leak into eager calls
    index_cache = getattr(attention_backends, 'relative_position_index', None)
    if hasattr(index_cache, 'cache_clear'):
        index_cache.cache_clear()
    export_onnx(model, path, (2, 3, 21, 19), exporter='dynamo')
    results = verify_onnx(model, path, [(1, 3, 30, 17), (3, 3, 9, 40)])
    assert max(r['max_abs_diff'] for r in results) < 1e-4


def test_bad_environment_override_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """Issue 27: every command checks the ESC_BASICSR_* overrides first; export did not (it failed mid-export)."""
    from esc_basicsr.layers import config

    torch.save({'params': randomized(TINY_ESC).state_dict()}, tmp_path / 'net.pth')
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': TINY_ESC}))
    monkeypatch.setenv(config.ATTN_ENV, 'bogus')
    try:
        rc = main(['--opt', str(tmp_path / 'opt.yml'), '--weights', str(tmp_path / 'net.pth'),
                   '-o', str(tmp_path / 'deployed.pth')])
    finally:
        monkeypatch.delenv(config.ATTN_ENV)
        config.attn_override.cache_clear()
    assert rc == 2
    assert capsys.readouterr().err.strip() == ("error: ESC_BASICSR_ATTN='bogus': expected one of auto, naive, sdpa, "
                                               "flex")
    assert not (tmp_path / 'deployed.pth').exists()
