"""The authors' real-world family: ESCReal (released nearest+conv layout, DySample option) and ESCRealM
(multi-scale, five upsamplers, pixel-unshuffled input).

Reference fixtures (strict loading, outputs in every CPU backend, in a batch, folded), every upsampler at
every scale it supports with and without unshuffling (layout, ``MetaUpsample``, shapes down to 1x1), the
padding rules, presets and the dynamo exporter. The generic checks of every preset and variant (sizes,
batches, gradients, round trips, detection, backends, folding, ONNX): tests/archs/test_table_harness.py;
DySample and UniUpsample as layers: tests/layers/test_upsamplers.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import esc_basicsr  # noqa: F401  (registers the archs)
from basicsr.utils.registry import ARCH_REGISTRY
from esc_basicsr.archs.deploy import fold_geometric_ensemble
from esc_basicsr.archs.esc_real_arch import ESCReal, reflect_pad_any_size
from esc_basicsr.archs.esc_realm_arch import ESCRealM
from esc_basicsr.layers import UPSAMPLERS, UniUpsample

from tests.conftest import assert_reproduces_fixture, load_fixture
from tests.helpers.weights import randomize_parameters

CLASSES = {'ESCReal': ESCReal, 'ESCRealM': ESCRealM}
FIXTURES = ['esc_real_x4_small.pt', 'esc_real_dysample_x4.pt', 'esc_realm_x2_pixelshuffle_unshuffle.pt']
CPU_BACKENDS = ['auto', 'naive', 'sdpa', 'flex']
TINY = dict(dim=16, pdim=4, kernel_size=5, n_blocks=1, conv_blocks=1, window_size=8, num_heads=2)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights everywhere (the zero-initialised dynamic-kernel heads and DySample scope
    would otherwise hide components and block gradients)."""
    return randomize_parameters(model, 0.1, seed)


def realm_configs() -> list[tuple[str, int, bool]]:
    """(upsampler, scale, unshuffle_mod) for every upsampler at every scale 1-4 it supports."""
    out = []
    for up in UPSAMPLERS:
        for scale in (1, 2, 3, 4):
            for unshuffle in (True, False):
                if unshuffle and scale >= 3:
                    continue  # unshuffle_mod applies to x1 and x2 only (x3/x4 are the same network)
                if up == 'conv' and scale != 1:
                    continue  # conv does not upsample (and so never unshuffles)
                out.append((up, scale, unshuffle))
    return out


REALM_CONFIGS = realm_configs()


def realm(up: str, scale: int, unshuffle: bool, mid_dim: int = 8, **kw) -> ESCRealM:
    return ESCRealM(**dict(TINY, **kw), upscaling_factor=scale, upsampler=up, unshuffle_mod=unshuffle,
                    mid_dim=mid_dim)


def config_id(cfg: tuple[str, int, bool]) -> str:
    up, scale, unshuffle = cfg
    return f'{up}-x{scale}' + ('-unshuffle' if unshuffle else '')


# --------------------------------------------------------------------------------- reference fixtures

@pytest.mark.parametrize('name', FIXTURES)
@pytest.mark.parametrize('attn_type', CPU_BACKENDS)
def test_reference_fixture(name: str, attn_type: str) -> None:
    fix = load_fixture(name)
    assert_reproduces_fixture(CLASSES[fix['arch']](**fix['kwargs'], attn_type=attn_type), fix)


@pytest.mark.parametrize('name', FIXTURES)
def test_reference_fixture_through_arch_registry(name: str) -> None:
    """What a BasicSR user does: ``network_g`` with the authors' arguments, strict loading."""
    fix = load_fixture(name)
    assert fix['arch'] in ARCH_REGISTRY, f'{fix["arch"]} is not registered in BasicSR (archs/table.py)'
    assert_reproduces_fixture(ARCH_REGISTRY.get(fix['arch'])(**fix['kwargs']), fix)


@pytest.mark.parametrize('name', FIXTURES)
def test_fresh_buffers_equal_the_reference(name: str) -> None:
    """``init_pos`` and ``MetaUpsample`` are computed, not only loaded: a fresh model holds the reference's."""
    fix = load_fixture(name)
    fresh = CLASSES[fix['arch']](**fix['kwargs']).state_dict()
    assert list(fresh) == list(fix['state_dict'])  # same keys, same order
    for key, value in fix['state_dict'].items():
        assert fresh[key].shape == value.shape and fresh[key].dtype == value.dtype, key
        if key.endswith(('init_pos', 'MetaUpsample')):  # integers; halves / scale, correctly rounded anywhere
            assert torch.equal(fresh[key], value), key


def test_released_esc_real_layout() -> None:
    sd = ESCReal(**TINY).state_dict()
    assert sorted({k.split('.')[1] for k in sd if k.startswith('to_img.')}) == ['1', '4', '6', '8']
    assert sd['to_img.6.weight'].shape == (16, 16, 3, 3) and sd['to_img.8.weight'].shape == (3, 16, 3, 3)
    with pytest.raises(ValueError, match='upscaling_factor=4'):
        ESCReal(**TINY, upscaling_factor=2)
    with pytest.raises(TypeError):
        ESCReal(**TINY, upsampler='dysample')  # ESCReal's switch is use_dysample


@pytest.mark.parametrize('name', ['esc_real_x4_small.pt', 'esc_real_dysample_x4.pt'])
def test_esc_real_eval_batch_equals_single_images(name: str) -> None:
    fix = load_fixture(name)
    net = ESCReal(**fix['kwargs']).eval()
    net.load_state_dict(fix['state_dict'])
    x = torch.cat([fix['input'], fix['input'].flip(-1), torch.rand_like(fix['input'])])
    with torch.no_grad():
        batched = net(x)
        single = torch.cat([net(x[i:i + 1]) for i in range(3)])
    assert (batched[:1] - fix['output']).abs().max().item() <= 1e-4
    assert (batched - single).abs().max().item() < 1e-5


def test_esc_realm_fixture_eval_batch_and_odd_size() -> None:
    fix = load_fixture('esc_realm_x2_pixelshuffle_unshuffle.pt')
    net = ESCRealM(**fix['kwargs']).eval()
    net.load_state_dict(fix['state_dict'])
    x = torch.cat([fix['input'], torch.rand_like(fix['input'])])
    with torch.no_grad():
        batched = net(x)
        assert (batched[:1] - fix['output']).abs().max().item() <= 1e-4
        assert (batched[1:] - net(x[1:])).abs().max().item() < 1e-5
        # an odd size is padded to the unshuffle factor and cropped back
        assert net(fix['input'][..., :45, :37]).shape == (1, 3, 90, 74)


# ----------------------------------------------------------------------------------------- ESCRealM

@pytest.mark.parametrize('cfg', REALM_CONFIGS, ids=config_id)
def test_realm_layout_meta_and_shapes(cfg: tuple[str, int, bool]) -> None:
    """Every upsampler at every scale, unshuffled or not (round trips, batches, gradients and export of the
    preset's unshuffle_mod: tests/archs/test_table_harness.py)."""
    up, scale, unshuffle = cfg
    f = 4 // scale if unshuffle and up != 'conv' else 1
    to_img_scale = 4 if f > 1 else scale
    net = randomize(realm(up, scale, unshuffle)).eval()
    sd = net.state_dict()
    # layout: proj/skip start with PixelUnshuffle(f) when unshuffling; to_img is the authors' UniUpsample
    # (whose layouts tests/layers/test_upsamplers.py checks key by key)
    assert sd['proj.1.weight' if f > 1 else 'proj.weight'].shape == (16, 3 * f * f, 3, 3)
    assert sd['skip.1.weight' if f > 1 else 'skip.0.weight'].shape == (32, 3 * f * f, 1, 1)
    to_img = {k[len('to_img.'):]: tuple(v.shape) for k, v in sd.items() if k.startswith('to_img.')}
    assert to_img == {k: tuple(v.shape) for k, v in UniUpsample(up, to_img_scale, 16, 3, 8).state_dict().items()}
    assert sd['to_img.MetaUpsample'].tolist() == [2, UPSAMPLERS.index(up), to_img_scale, 16, 3, 8, 4]
    x = torch.rand(3, 3, 13, 10)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (3, 3, 13 * scale, 10 * scale) and torch.isfinite(out).all()
        for size in [(1, 1), (2, 3), (5, 1)]:
            assert net(torch.rand(1, 3, *size)).shape == (1, 3, size[0] * scale, size[1] * scale), size


@pytest.mark.parametrize('scale', [1, 2])
@pytest.mark.parametrize('up', ['nearest+conv', 'dysample'])
def test_realm_unshuffled_features_below_half_the_window(scale: int, up: str) -> None:
    """x1 with unshuffle: a 64x64 image is 16x16 features, below half of a 32x32 window."""
    net = randomize(realm(up, scale, True, window_size=32)).eval()
    for size in [(64, 64), (1, 1), (3, 70)]:
        with torch.no_grad():
            out = net(torch.rand(2, 3, *size))
        assert out.shape == (2, 3, size[0] * scale, size[1] * scale) and torch.isfinite(out).all()


def test_realm_padding_to_the_unshuffle_factor_is_the_authors_reflection() -> None:
    """An odd input is reflect-padded (bottom/right) to a multiple of f, processed, cropped."""
    net = randomize(realm('pixelshuffledirect', 1, True)).eval()
    x = torch.rand(1, 3, 10, 7)
    padded = F.pad(x, (0, 1, 0, 2), mode='reflect')
    with torch.no_grad():
        assert (net(x) - net(padded)[..., :10, :7]).abs().max().item() < 1e-6


@pytest.mark.parametrize('size', [(1, 1), (1, 5), (2, 2), (3, 4), (4, 4), (9, 7)])
def test_any_size_reflect_padding(size: tuple[int, int]) -> None:
    """The skip branch's padding: F.pad's reflection where valid, numpy's repeated reflection beyond."""
    x = torch.randn(2, 3, *size)
    out = reflect_pad_any_size(x, 3)
    expected = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (3, 3), (3, 3)), mode='reflect'))
    assert torch.equal(out, expected)
    if min(size) > 3:
        assert torch.equal(out, F.pad(x, (3, 3, 3, 3), mode='reflect'))


def test_realm_constructor_errors() -> None:
    with pytest.raises(ValueError, match='does not upsample'):
        ESCRealM(**TINY, upscaling_factor=2, upsampler='conv', unshuffle_mod=False)
    # conv cannot upsample: at x1 it never unshuffles (a same-size network), whatever unshuffle_mod says
    same_size = ESCRealM(**TINY, upscaling_factor=1, upsampler='conv')
    assert same_size.unshuffle == 1 and same_size.proj.weight.shape == (16, 3, 3, 3)
    with pytest.raises(ValueError, match='powers of two'):
        ESCRealM(**TINY, upscaling_factor=5, upsampler='nearest+conv')
    with pytest.raises(ValueError, match='upsampler must be one of'):
        ESCRealM(**TINY, upsampler='pa_up')
    with pytest.raises(TypeError):
        ESCRealM(**TINY, scale=2)  # the authors' name is upscaling_factor


# ----------------------------------------------------------------------------------------- presets

def test_esc_real_preset_is_the_released_configuration() -> None:
    from esc_basicsr.archs import build, network_g

    fix = load_fixture('esc_real_x4_small.pt')  # the released layout with 1 block instead of 10
    assert network_g('esc_real', 4) == dict(fix['kwargs'], type='ESCReal', n_blocks=10)
    net = build('esc_real', 4)
    assert n_params(net) == 2_265_307
    small = {k: v for k, v in net.state_dict().items() if not k.startswith('blocks.') or k.startswith('blocks.0.')}
    assert {k: v.shape for k, v in small.items()} == {k: v.shape for k, v in fix['state_dict'].items()}


@pytest.mark.parametrize('scale, params', [(1, 2_296_987), (2, 2_271_643), (3, 2_228_379), (4, 2_265_307)])
def test_esc_realm_preset(scale: int, params: int) -> None:
    from esc_basicsr.archs import build

    net = build('esc_realm', scale)
    assert type(net) is ESCRealM and n_params(net) == params
    assert (net.to_img.upsample, net.to_img.mid_dim, net.unshuffle_mod) == ('nearest+conv', 48, True)
    assert net.unshuffle == (4 // scale if scale < 3 else 1)


# ------------------------------------------------------------------------- deployment and export

@pytest.mark.parametrize('name', FIXTURES)
def test_folding_the_geometric_ensemble_keeps_the_output(name: str) -> None:
    fix = load_fixture(name)
    net = CLASSES[fix['arch']](**fix['kwargs']).eval()
    net.load_state_dict(fix['state_dict'])
    fold_geometric_ensemble(net)
    assert isinstance(net.plk_func, torch.nn.Identity)
    with torch.no_grad():
        assert (net(fix['input']) - fix['output']).abs().max().item() <= 1e-4
    fresh = CLASSES[fix['arch']](**fix['kwargs']).eval()  # a folded checkpoint loads into the training form
    fresh.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert (fresh(fix['input']) - fix['output']).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_dynamo_onnx_export(tmp_path) -> None:
    """The torch.export-based exporter on DySample and the unshuffled input (ESCRealM x1); the default
    exporter on every architecture and variant: tests/archs/test_table_harness.py."""
    from esc_basicsr.tools.onnx_export import export_onnx, verify_onnx

    net = fold_geometric_ensemble(randomize(ESCRealM(**TINY, attn_type='sdpa', upscaling_factor=1,
                                                     upsampler='dysample'))).eval()
    path = str(tmp_path / 'realm_x1_dysample_unshuffle.onnx')
    export_onnx(net, path, (2, 3, 21, 19), exporter='dynamo')
    results = verify_onnx(net, path, [(1, 3, 30, 17), (3, 3, 9, 40)])
    assert max(res['max_abs_diff'] for res in results) < 1e-4
